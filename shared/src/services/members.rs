//! Member and auth use cases: sign-up, login, refresh, profile, withdraw, restore. Also the input
//! rules of member fields, shared by the request types of the function crates.

use crate::auth::device::{issue_device_token, trusted_device};
use crate::auth::refresh::{hash_refresh_token, is_well_formed, new_refresh_token};
use crate::clock::rfc3339;
use crate::deps::{HasClock, HasConfig, HasLoginThrottle, HasPasswords, HasStore, HasTokens};
use crate::domain::member::normalize_email;
use crate::domain::{DomainEvent, EventType, Gender, Member, MemberStatus, Role, StoredPassword};
use crate::error::{Error, Result};
use crate::services::history::{HistoryRow, history_rows};
use crate::store::{RefreshTokenRecord, RotationMark};
use crate::throttle::{device_login_keys, login_keys, signup_keys};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

/// A validated sign-up.
#[derive(Clone)]
pub struct SignUp {
    pub name: String,
    pub email: String,
    pub phone_number: String,
    pub gender: Gender,
    pub birth: NaiveDate,
    pub password: String,
    /// The caller's address as API Gateway saw it: sign-ups are throttled per address.
    pub source_ip: Option<String>,
}

/// What sign-up, login and refresh answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenPair {
    pub member_id: String,
    pub access_token: String,
    pub refresh_token: String,
    /// After a sign-up or a log-in: the token that makes this device trusted at the next log-in
    /// (`crate::auth::device`). Not on a refresh.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_token: Option<String>,
}

/// `GET /member/{memberId}`: everything but the password hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub member_id: String,
    pub name: String,
    pub email: String,
    pub phone_number: String,
    pub gender: Gender,
    pub birth: String,
    pub status: MemberStatus,
    /// `CUSTOMER`, `STAFF` or `ADMIN`: what the member's tokens may do.
    pub role: Role,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub withdrawn_at: Option<String>,
    pub created_at: String,
    pub history: Vec<HistoryRow>,
}

/// What withdraw and restore answer: the member's new status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusChange {
    pub member_id: String,
    pub status: MemberStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub withdrawn_at: Option<String>,
}

impl From<&Member> for StatusChange {
    fn from(member: &Member) -> Self {
        Self {
            member_id: member.member_id.clone(),
            status: member.status,
            withdrawn_at: member.withdrawn_at.map(rfc3339),
        }
    }
}

/// What starting or renewing a session uses: the store (members, refresh tokens), the clock, the
/// configuration (token lifetimes) and the access-token signer.
pub trait SessionDeps: HasStore + HasClock + HasConfig + HasTokens {}

impl<T: HasStore + HasClock + HasConfig + HasTokens + ?Sized> SessionDeps for T {}

/// Registers a `SERVICE` member and logs them in. A taken email (any case) → 400ME000. Each
/// sign-up costs a full Argon2id hash, so before it is computed the attempt is reserved on the
/// throttle per source address (kept, success or not): over the limit → 429CO000 with
/// `Retry-After` (docs/login-throttle.md).
pub async fn sign_up(
    deps: &(impl SessionDeps + HasPasswords + HasLoginThrottle),
    input: SignUp,
) -> Result<TokenPair> {
    let now = deps.clock().now();
    check_birth_in_past(input.birth, now)?;
    if let Some(ip) = input.source_ip.as_deref() {
        let throttle = &deps.config().signup_throttle;
        deps.login_throttle()
            .reserve(&signup_keys(throttle, ip), throttle.window, now)
            .await
            .inspect_err(|e| {
                if matches!(e, Error::TooManyRequests(_)) {
                    tracing::warn!("sign-up throttled");
                }
            })?;
    }
    let password = StoredPassword::new(deps.passwords().hash_async(&input.password).await?);
    let member = Member {
        member_id: crate::ids::new_id(now),
        name: input.name.trim().to_owned(),
        email: normalize_email(&input.email),
        phone_number: input.phone_number,
        gender: Some(input.gender),
        birth: Some(input.birth),
        status: MemberStatus::Service,
        role: Role::Customer,
        withdrawn_at: None,
        created_at: now,
        session_version: 0,
    };
    let event = DomainEvent::member(
        EventType::MemberRegistered,
        &member.member_id,
        MemberStatus::Service.as_str(),
        now,
    );
    // The member and its first refresh token in one write.
    let (refresh_token, record) = new_session(deps, &member, now);
    deps.store()
        .sign_up_member(&member, &password, &event, &record)
        .await?;
    tracing::info!(member_id = %member.member_id, "member registered");
    let keyset = deps.tokens().signing_keyset().await?;
    Ok(TokenPair {
        access_token: deps
            .tokens()
            .issue(&member.member_id, member.role, member.session_version, now)
            .await?,
        device_token: Some(issue_device_token(&keyset, &member.email, None, now)?),
        member_id: member.member_id,
        refresh_token,
    })
}

/// Checks credentials and starts a new refresh-token family. Unknown email, wrong password and
/// an `END` member all answer 401ME000 after one password verification, so neither the answer
/// nor its timing tells which. Before any of that, the attempt is reserved on the login throttle:
/// per email and per `source_ip`, or, for a client presenting a valid `device_token` for this
/// email, per that device alone (so strangers guessing at the email, or neighbours behind the
/// same address, never lock the owner's devices out). Over the limit → 429CO000 with
/// `Retry-After`, the same for known and unknown emails, and no hash computed. A successful
/// log-in gives its attempt back and answers a (renewed) device token.
pub async fn log_in(
    deps: &(impl SessionDeps + HasPasswords + HasLoginThrottle),
    email: &str,
    password: &str,
    source_ip: Option<&str>,
    device_token: Option<&str>,
) -> Result<TokenPair> {
    let now = deps.clock().now();
    let email = normalize_email(email);
    let keyset = deps.tokens().signing_keyset().await?;
    let device = device_token.and_then(|token| trusted_device(&keyset, &email, token, now));
    let throttle = &deps.config().login_throttle;
    let keys = match &device {
        Some(device_id) => device_login_keys(throttle, device_id),
        None => login_keys(throttle, &email, source_ip),
    };
    let reservation = deps
        .login_throttle()
        .reserve(&keys, deps.config().login_throttle.window, now)
        .await
        .inspect_err(|e| {
            if matches!(e, Error::TooManyRequests(_)) {
                tracing::warn!("log-in throttled");
            }
        })?;
    let found = deps.store().find_member_for_log_in(&email).await?;
    let member = match found {
        Some((member, Some(stored))) => {
            let matches = deps.passwords().verify_async(password, stored.phc()).await;
            if !matches || member.status == MemberStatus::End {
                return Err(Error::BadCredentials);
            }
            member
        }
        // Unknown, or without a password (ended): the same decoy check, the same answer.
        Some((_, None)) | None => {
            deps.passwords().verify_decoy_async(password).await;
            return Err(Error::BadCredentials);
        }
    };
    let mut pair = start_session(deps, &member, now).await?;
    deps.login_throttle().release(&reservation).await;
    pair.device_token = Some(issue_device_token(&keyset, &email, device.as_deref(), now)?);
    Ok(pair)
}

/// Rotates a refresh token into a new pair. Malformed, unknown, expired or revoked → 401CO000;
/// so does a member that is gone or `END`. A used token presented again within
/// `refresh_reuse_grace` of its rotation (two tabs, a retry after a lost answer) gets the very
/// same pair again: the successor refresh token is derived from the presented one under the
/// signing keyset's refresh secret, and the access token's claims from the rotation's record,
/// signed by the same Ed25519 key (deterministic). Later reuse revokes the whole family.
pub async fn refresh(deps: &impl SessionDeps, refresh_token: &str) -> Result<TokenPair> {
    if !is_well_formed(refresh_token) {
        return Err(Error::Unauthorized);
    }
    let now = deps.clock().now();
    let keyset = deps.tokens().signing_keyset().await?;
    let next = keyset.refresh_successor(refresh_token)?;
    let presented_hash = hash_refresh_token(refresh_token);
    let mark = RotationMark {
        signing_kid: keyset.current.kid.clone(),
        grace: deps.config().refresh_reuse_grace,
    };
    let rotation = deps
        .store()
        .rotate_refresh_token_marked(
            &presented_hash,
            &hash_refresh_token(&next),
            now,
            now + deps.config().refresh_token_ttl,
            &mark,
        )
        .await?;
    if rotation.replayed {
        tracing::info!("refresh token presented again within the grace window; same pair");
    }
    let member_id = rotation.successor.member_id;
    let member = deps
        .store()
        .get_member(&member_id)
        .await?
        .ok_or(Error::Unauthorized)?;
    // A family begun before the member's sessions ended (withdrawal, restore, role change, log-out
    // everywhere) never refreshes again.
    if member.status == MemberStatus::End
        || member.session_version != rotation.successor.session_version
    {
        return Err(Error::Unauthorized);
    }
    // The access token's id is derived from the presented token (one-way, in its own domain), so
    // a replay signs the same claims: the same token, byte for byte.
    let jti = hash_refresh_token(&format!("access-jti:{presented_hash}"));
    let access = deps
        .tokens()
        .issue_exact(
            &member.member_id,
            member.role,
            member.session_version,
            rotation.rotated_at,
            &jti,
            Some(&rotation.signing_kid),
        )
        .await?;
    Ok(TokenPair {
        access_token: access.token,
        member_id: member.member_id,
        refresh_token: next,
        device_token: None,
    })
}

/// What a log-out ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoggedOut {
    pub member_id: String,
    /// True when every session of the member ended, not only this one.
    pub everywhere: bool,
}

/// Log-out (`POST /auth/logout`): the presented refresh token's whole family is revoked, so
/// neither it nor any token rotated from it refreshes again (the access token in hand lives out
/// its lifetime, at most `ACCESS_TOKEN_TTL`). With `everywhere`, every session of the member
/// ends at once: their session version moves on, and every access token and refresh family
/// issued before is refused from the next request. Holding the refresh token is the credential,
/// as for a refresh. Malformed or unknown → 401CO000; logging out of a family already revoked
/// answers the same again.
pub async fn log_out(
    deps: &(impl HasStore + HasClock),
    refresh_token: &str,
    everywhere: bool,
) -> Result<LoggedOut> {
    if !is_well_formed(refresh_token) {
        return Err(Error::Unauthorized);
    }
    let now = deps.clock().now();
    let member_id = deps
        .store()
        .revoke_refresh_family(&hash_refresh_token(refresh_token), now)
        .await?
        .ok_or(Error::Unauthorized)?;
    if everywhere {
        deps.store()
            .end_sessions(&member_id)
            .await
            .map_err(|error| match error {
                // An erased member's token: nothing is left to end.
                Error::NotFound(_) => Error::Unauthorized,
                other => other,
            })?;
    }
    tracing::info!(member_id, everywhere, "logged out");
    Ok(LoggedOut {
        member_id,
        everywhere,
    })
}

/// The member's profile with their status timeline (oldest first).
/// The caller's own profile with its history, for the member id of a verified token: one read
/// (`get_member_with_history`), which also authenticates (unknown or `END` → 401CO000).
pub async fn own_profile(
    deps: &impl HasStore,
    caller: &(impl crate::domain::member::Caller + ?Sized),
) -> Result<Profile> {
    let found = deps
        .store()
        .get_member_with_history(caller.member_id())
        .await?;
    let (member, history) = match found {
        Some((member, history)) => (crate::domain::member::admit(Some(member), caller)?, history),
        None => return Err(Error::Unauthorized),
    };
    profile_of(&member, history)
}

fn profile_of(member: &Member, history: Vec<crate::domain::HistoryEntry>) -> Result<Profile> {
    Ok(Profile {
        member_id: member.member_id.clone(),
        name: member.name.clone(),
        email: member.email.clone(),
        phone_number: member.phone_number.clone(),
        // An erased (`END`) member never gets this far: its token is refused.
        gender: member.gender.ok_or(Error::Unauthorized)?,
        birth: member
            .birth
            .ok_or(Error::Unauthorized)?
            .format("%Y-%m-%d")
            .to_string(),
        status: member.status,
        role: member.role,
        withdrawn_at: member.withdrawn_at.map(rfc3339),
        created_at: rfc3339(member.created_at),
        history: history_rows(history),
    })
}

/// `SERVICE` → `WITHDRAWN`; anything else → 400ME001.
/// `member` is the one the request authenticated as: it serves as the store's read.
pub async fn withdraw(deps: &(impl HasStore + HasClock), member: &Member) -> Result<StatusChange> {
    let member_id = member.member_id.as_str();
    let now = deps.clock().now();
    let event = DomainEvent::member(
        EventType::MemberWithdrawn,
        member_id,
        MemberStatus::Withdrawn.as_str(),
        now,
    );
    let member = deps
        .store()
        .withdraw_read_member(member, now, &event)
        .await?;
    tracing::info!(member_id, "member withdrawn");
    Ok(StatusChange::from(&member))
}

/// `WITHDRAWN` less than 30 days ago → `SERVICE`; anything else → 400ME002.
/// `member` is the one the request authenticated as: it serves as the store's read.
pub async fn restore(deps: &(impl HasStore + HasClock), member: &Member) -> Result<StatusChange> {
    let member_id = member.member_id.as_str();
    let now = deps.clock().now();
    let event = DomainEvent::member(
        EventType::MemberRestored,
        member_id,
        MemberStatus::Service.as_str(),
        now,
    );
    let member = deps
        .store()
        .restore_read_member(member, now, &event)
        .await?;
    tracing::info!(member_id, "member restored");
    Ok(StatusChange::from(&member))
}

/// The first refresh token of a new family, and the record that stores it (its hash).
fn new_session(
    deps: &impl HasConfig,
    member: &Member,
    now: DateTime<Utc>,
) -> (String, RefreshTokenRecord) {
    let refresh_token = new_refresh_token();
    let record = RefreshTokenRecord {
        token_hash: hash_refresh_token(&refresh_token),
        member_id: member.member_id.clone(),
        family_id: crate::ids::new_id(now),
        issued_at: now,
        expires_at: now + deps.config().refresh_token_ttl,
        session_version: member.session_version,
    };
    (refresh_token, record)
}

/// An access token and the first refresh token of a new family.
async fn start_session(
    deps: &impl SessionDeps,
    member: &Member,
    now: DateTime<Utc>,
) -> Result<TokenPair> {
    let (refresh_token, record) = new_session(deps, member, now);
    deps.store().store_refresh_token(&record).await?;
    Ok(TokenPair {
        member_id: member.member_id.clone(),
        access_token: deps
            .tokens()
            .issue(&member.member_id, member.role, member.session_version, now)
            .await?,
        refresh_token,
        device_token: None,
    })
}

// ---- Input rules. Each answers 400CO000 naming its field. ----

/// 1–50 characters once trimmed, plain text: no control, bidirectional or zero-width
/// characters, no `<` or `>` ([`crate::domain::text`]).
pub fn check_name(name: &str) -> Result<()> {
    let len = name.trim().chars().count();
    if (1..=50).contains(&len) && crate::domain::text::is_plain_name(name.trim()) {
        Ok(())
    } else {
        Err(Error::invalid("name"))
    }
}

/// At most 254 bytes, no whitespace or control characters, one `@` after a non-empty local
/// part, and a domain with a dot between non-empty labels.
pub fn check_email(email: &str) -> Result<()> {
    let invalid = || Error::invalid("email");
    if email.is_empty() || email.len() > 254 {
        return Err(invalid());
    }
    let (local, domain) = email.split_once('@').ok_or_else(invalid)?;
    // RFC 5322 dot-atom local part (no quoted strings) and LDH domain labels: what mail
    // providers accept in practice, and what OpenAPI's `format: email` validators accept.
    let atext = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+/=?^_`{|}~-".contains(&b);
    let dot_atom = |part: &str, allowed: &dyn Fn(u8) -> bool| {
        !part.is_empty()
            && part
                .split('.')
                .all(|atom| !atom.is_empty() && atom.bytes().all(allowed))
    };
    let label = |b: u8| b.is_ascii_alphanumeric() || b == b'-';
    let labels_ok = domain
        .split('.')
        .all(|l| !l.starts_with('-') && !l.ends_with('-') && l.len() <= 63);
    if local.len() > 64
        || !dot_atom(local, &atext)
        || !domain.contains('.')
        || !dot_atom(domain, &label)
        || !labels_ok
    {
        return Err(invalid());
    }
    Ok(())
}

/// A Korean mobile number: `01X-XXX(X)-XXXX` with X in 0,1,6,7,8,9 for the prefix.
pub fn check_phone_number(phone: &str) -> Result<()> {
    let invalid = || Error::invalid("phoneNumber");
    let mut parts = phone.split('-');
    let (Some(prefix), Some(middle), Some(last), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid());
    };
    let digits = |s: &str, lens: std::ops::RangeInclusive<usize>| {
        lens.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
    };
    let prefix_ok = prefix.len() == 3
        && prefix.starts_with("01")
        && matches!(
            prefix.as_bytes()[2],
            b'0' | b'1' | b'6' | b'7' | b'8' | b'9'
        );
    if prefix_ok && digits(middle, 3..=4) && digits(last, 4..=4) {
        Ok(())
    } else {
        Err(invalid())
    }
}

/// 8–128 characters.
pub fn check_password(password: &str) -> Result<()> {
    if !(8..=128).contains(&password.chars().count()) {
        return Err(Error::invalid("password"));
    }
    if crate::auth::password::is_too_common(password) {
        return Err(Error::CommonPassword);
    }
    Ok(())
}

/// A `YYYY-MM-DD` calendar date from 1900 on (whether it is past is checked against the clock
/// by [`sign_up`]).
pub fn parse_birth(birth: &str) -> Result<NaiveDate> {
    let invalid = || Error::invalid("birth");
    let well_shaped = birth.len() == 10
        && birth.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        });
    if !well_shaped {
        return Err(invalid());
    }
    let date = NaiveDate::parse_from_str(birth, "%Y-%m-%d").map_err(|_| invalid())?;
    if date < NaiveDate::from_ymd_opt(1900, 1, 1).ok_or_else(invalid)? {
        return Err(invalid());
    }
    Ok(date)
}

fn check_birth_in_past(birth: NaiveDate, now: DateTime<Utc>) -> Result<()> {
    if birth < now.date_naive() {
        Ok(())
    } else {
        Err(Error::invalid("birth"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        for ok in ["a@b.co", "first.last+tag@sub.example.com", "A@B.IO"] {
            assert!(check_email(ok).is_ok(), "{ok}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        for bad in [
            "",
            "ab.co",
            "@b.co",
            "a@b",
            "a@b@c.co",
            "a @b.co",
            "a@.co",
            "a@b.",
            "a@b..co",
            "a\0@b.co",
            &long,
            "pr(op@b.co",
            "<a@b.co>",
            "a,b@b.co",
            ".a@b.co",
            "a..b@b.co",
            "a@-b.co",
            "a@b_c.co",
        ] {
            assert_eq!(check_email(bad), Err(Error::invalid("email")), "{bad}");
        }
    }

    #[test]
    fn phone_numbers() {
        for ok in ["010-1234-5678", "011-123-4567", "019-9999-0000"] {
            assert!(check_phone_number(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "01012345678",
            "012-1234-5678",
            "010-12-5678",
            "010-12345-5678",
            "010-1234-567",
            "010-1234-5678-1",
            "010-12a4-5678",
            "110-1234-5678",
            "010-١٢٣٤-5678",
        ] {
            assert_eq!(
                check_phone_number(bad),
                Err(Error::invalid("phoneNumber")),
                "{bad}"
            );
        }
    }

    #[test]
    fn names_passwords_and_births() {
        assert!(check_name("Kim").is_ok());
        assert!(check_name(&"가".repeat(50)).is_ok());
        assert!(check_name("   ").is_err());
        assert!(check_name("Kim\0").is_err());
        assert!(check_name(&"a".repeat(51)).is_err());
        assert!(check_password("k8!chars").is_ok());
        assert_eq!(check_password("12345678"), Err(Error::CommonPassword));
        assert!(check_password("1234567").is_err());
        assert!(check_password(&"p".repeat(129)).is_err());
        assert_eq!(
            parse_birth("1990-02-28"),
            Ok(NaiveDate::from_ymd_opt(1990, 2, 28).unwrap_or_default())
        );
        for bad in [
            "1990-02-30",
            "1990-2-28",
            "+1990-02-28",
            "19900228",
            "1800-01-01",
        ] {
            assert_eq!(parse_birth(bad), Err(Error::invalid("birth")), "{bad}");
        }
        let now = crate::testing::epoch();
        assert!(check_birth_in_past(now.date_naive(), now).is_err());
        assert!(check_birth_in_past(now.date_naive().pred_opt().unwrap_or_default(), now).is_ok());
    }
}
