//! Members and the rules of their life cycle: SERVICE → WITHDRAWN (→ SERVICE within 30 days) → END.

use crate::error::{Error, Result};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// How long a withdrawn member may restore, and after which the daily job ends them.
pub const RESTORE_WINDOW: Duration = Duration::days(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MemberStatus {
    Service,
    Withdrawn,
    End,
}

impl MemberStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberStatus::Service => "SERVICE",
            MemberStatus::Withdrawn => "WITHDRAWN",
            MemberStatus::End => "END",
        }
    }
}

/// What a member may do beyond ordering: `STAFF` runs the catalogue and fulfils orders, `ADMIN`
/// also grants roles. Stored on the member and carried in the access token; every staff call
/// checks both (docs/staff.md).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Role {
    #[default]
    Customer,
    Staff,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Customer => "CUSTOMER",
            Role::Staff => "STAFF",
            Role::Admin => "ADMIN",
        }
    }

    /// Parses `CUSTOMER`, `STAFF` or `ADMIN` (exactly).
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "CUSTOMER" => Some(Role::Customer),
            "STAFF" => Some(Role::Staff),
            "ADMIN" => Some(Role::Admin),
            _ => None,
        }
    }

    pub fn is_customer(&self) -> bool {
        *self == Role::Customer
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Gender {
    Male,
    Female,
}

/// A member's profile as stored. Its password is not part of it: that is a [`StoredPassword`],
/// kept apart (on DynamoDB in a table of its own, without a stream, so no stream reader ever
/// sees it; docs/security.md).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub member_id: String,
    /// The personal fields (name, email, phone number, gender, birth) are erased, and the
    /// stored password deleted, when the member ends ([`Member::erase_personal_data`]): empty strings and `None`, and on
    /// DynamoDB the attributes are removed ([`PERSONAL_ATTRIBUTES`]). docs/retention.md.
    #[serde(default)]
    pub name: String,
    /// Lowercased at sign-up; compared case-insensitively.
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub phone_number: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gender: Option<Gender>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birth: Option<NaiveDate>,
    pub status: MemberStatus,
    /// `CUSTOMER` unless an admin granted more; absent on rows written before roles existed.
    #[serde(default, skip_serializing_if = "Role::is_customer")]
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub withdrawn_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// The generation of the member's sessions: every access token and refresh token carries the
    /// one it was issued under, and only the current one is accepted ([`admit`]). A withdrawal,
    /// a role change and a log-out everywhere move it on, which ends every session issued
    /// before, for good. Absent (0) on rows written before sessions had versions.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub session_version: u32,
}

fn is_zero(version: &u32) -> bool {
    *version == 0
}

/// The stored attributes of a member profile that hold personal data, removed at `END`.
/// `passwordHash` is on profiles written before passwords moved to a table of their own, until
/// `cafe-admin backfill-passwords` moves it (docs/deploy.md).
pub const PERSONAL_ATTRIBUTES: [&str; 6] = [
    "name",
    "email",
    "phoneNumber",
    "gender",
    "birth",
    "passwordHash",
];

/// A member's password as stored: the Argon2id PHC string. Kept apart from the [`Member`]
/// profile, read only by log-in, and never shown: its `Debug` is a placeholder.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredPassword(String);

impl StoredPassword {
    pub fn new(phc: impl Into<String>) -> Self {
        Self(phc.into())
    }

    /// The PHC string, for the password check and the store.
    pub fn phc(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for StoredPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoredPassword(..)")
    }
}

/// Debug without the personal fields, so a stray `{:?}` cannot leak them.
impl std::fmt::Debug for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Member")
            .field("member_id", &self.member_id)
            .field("status", &self.status)
            .field("role", &self.role)
            .field("withdrawn_at", &self.withdrawn_at)
            .field("created_at", &self.created_at)
            .field("session_version", &self.session_version)
            .finish_non_exhaustive()
    }
}

/// Normalises an email for storage and comparison.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

impl Member {
    /// Forgets everything personal: what an `END` member keeps is its id, status, timestamps.
    pub fn erase_personal_data(&mut self) {
        self.name.clear();
        self.email.clear();
        self.phone_number.clear();
        self.gender = None;
        self.birth = None;
    }

    /// True when no personal field holds anything.
    pub fn is_erased(&self) -> bool {
        self.name.is_empty()
            && self.email.is_empty()
            && self.phone_number.is_empty()
            && self.gender.is_none()
            && self.birth.is_none()
    }

    /// Withdrawal is allowed only from `SERVICE` (400ME001 otherwise).
    pub fn check_can_withdraw(&self) -> Result<()> {
        match self.status {
            MemberStatus::Service => Ok(()),
            _ => Err(Error::NotInService),
        }
    }

    /// Restore is allowed from `WITHDRAWN` while `now` is less than 30 days after withdrawal.
    pub fn check_can_restore(&self, now: DateTime<Utc>) -> Result<()> {
        match (self.status, self.withdrawn_at) {
            (MemberStatus::Withdrawn, Some(at)) if now < at + RESTORE_WINDOW => Ok(()),
            _ => Err(Error::NotRestorable),
        }
    }

    /// True if the daily job must end this member: withdrawn 30 or more days before `now`.
    pub fn is_due_to_end(&self, now: DateTime<Utc>) -> bool {
        matches!((self.status, self.withdrawn_at), (MemberStatus::Withdrawn, Some(at)) if at <= expiry_cutoff(now))
    }

    /// A staff call needs a member in `SERVICE` whose stored role is at least `required`
    /// (403CO000 otherwise): a withdrawn staff member can no longer act as staff.
    pub fn check_role(&self, required: Role) -> Result<()> {
        if self.status == MemberStatus::Service && self.role >= required {
            Ok(())
        } else {
            Err(Error::Forbidden)
        }
    }

    /// Ordering and paying need `SERVICE` (403CO000 otherwise).
    pub fn check_in_service(&self) -> Result<()> {
        match self.status {
            MemberStatus::Service => Ok(()),
            _ => Err(Error::Forbidden),
        }
    }
}

/// Members withdrawn at or before this instant are due to end.
pub fn expiry_cutoff(now: DateTime<Utc>) -> DateTime<Utc> {
    now - RESTORE_WINDOW
}

/// Who a request is made by: the member id of a verified token and the session version it was
/// issued under. Handlers pass the verified token itself; code that acts for a member without
/// a token of theirs (tests, the bench fixture, an operator's tool) passes the bare id, which
/// names no session and is judged by the member's status alone.
pub trait Caller: Send + Sync {
    fn member_id(&self) -> &str;
    /// The token's session version; `None` for a bare member id.
    fn session_version(&self) -> Option<u32>;
}

impl Caller for str {
    fn member_id(&self) -> &str {
        self
    }
    fn session_version(&self) -> Option<u32> {
        None
    }
}

impl Caller for String {
    fn member_id(&self) -> &str {
        self
    }
    fn session_version(&self) -> Option<u32> {
        None
    }
}

/// The stored member behind a caller: an unknown member or an `END` one → 401CO000 (their
/// tokens outlive them by at most the access token's lifetime), and so is a token of a session
/// that has ended ([`session_is_current`]).
pub fn admit(member: Option<Member>, caller: &(impl Caller + ?Sized)) -> Result<Member> {
    match member {
        Some(member)
            if member.status != MemberStatus::End
                && caller
                    .session_version()
                    .is_none_or(|version| session_is_current(&member, version)) =>
        {
            Ok(member)
        }
        _ => Err(Error::Unauthorized),
    }
}

/// True if a token issued under session `version` still speaks for `member`: it is the
/// member's current version, or the member is `WITHDRAWN` and the token was issued just before
/// the withdrawal (which moved the version on by one): the contract keeps such a token valid
/// for its lifetime so the member can restore, while every endpoint that needs `SERVICE`
/// refuses it (403CO000). Once restored the member is no longer `WITHDRAWN`, so tokens from
/// before the withdrawal (the one that restored included) never come back; a session begun
/// while withdrawn (a log-in to restore) carries on.
pub fn session_is_current(member: &Member, version: u32) -> bool {
    version == member.session_version
        || (member.status == MemberStatus::Withdrawn
            && version.checked_add(1) == Some(member.session_version))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(status: MemberStatus, withdrawn_at: Option<DateTime<Utc>>) -> Member {
        Member {
            member_id: "m".into(),
            name: "n".into(),
            email: "e@x.io".into(),
            phone_number: "010-1234-5678".into(),
            gender: Some(Gender::Female),
            birth: NaiveDate::from_ymd_opt(1990, 1, 1),
            status,
            role: Role::Customer,
            withdrawn_at,
            created_at: Utc::now(),
            session_version: 0,
        }
    }

    #[test]
    fn staff_calls_need_the_role_and_service() {
        let mut staff = member(MemberStatus::Service, None);
        assert_eq!(staff.check_role(Role::Staff), Err(Error::Forbidden));
        staff.role = Role::Staff;
        assert!(staff.check_role(Role::Staff).is_ok());
        assert_eq!(staff.check_role(Role::Admin), Err(Error::Forbidden));
        staff.role = Role::Admin;
        assert!(staff.check_role(Role::Staff).is_ok());
        staff.status = MemberStatus::Withdrawn;
        assert_eq!(staff.check_role(Role::Staff), Err(Error::Forbidden));
        assert_eq!(Role::parse("STAFF"), Some(Role::Staff));
        assert_eq!(Role::parse("staff"), None);
    }

    #[test]
    fn restore_window_is_thirty_days_exclusive() {
        let at = Utc::now();
        let m = member(MemberStatus::Withdrawn, Some(at));
        assert!(
            m.check_can_restore(at + Duration::days(30) - Duration::seconds(1))
                .is_ok()
        );
        assert_eq!(
            m.check_can_restore(at + Duration::days(30)),
            Err(Error::NotRestorable)
        );
        assert!(!m.is_due_to_end(at + Duration::days(30) - Duration::seconds(1)));
        assert!(m.is_due_to_end(at + Duration::days(30)));
    }

    #[test]
    fn only_service_members_withdraw() {
        assert!(
            member(MemberStatus::Service, None)
                .check_can_withdraw()
                .is_ok()
        );
        assert_eq!(
            member(MemberStatus::Withdrawn, Some(Utc::now())).check_can_withdraw(),
            Err(Error::NotInService)
        );
    }

    #[test]
    fn debug_never_shows_the_password_or_personal_fields() {
        let shown = format!("{:?}", member(MemberStatus::Service, None));
        assert!(!shown.contains("e@x.io") && !shown.contains("010-1234"));
        let password = StoredPassword::new("$argon2id$v=19$secret-hash");
        assert!(!format!("{password:?}").contains("secret-hash"));
        assert_eq!(password.phc(), "$argon2id$v=19$secret-hash");
    }
}
