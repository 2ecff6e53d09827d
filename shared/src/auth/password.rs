//! Argon2id password hashing (PHC strings). Parameters come from configuration: production uses
//! OWASP's 19 MiB / 2 iterations / 1 lane; tests use the cheapest valid ones.

use crate::error::{Error, Result};
use argon2::password_hash::{PasswordHash, PasswordVerifier, SaltString, rand_core::OsRng};
use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, Version};

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Params {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for Argon2Params {
    /// OWASP's first recommended Argon2id setting: 19 MiB, 2 iterations, 1 lane.
    fn default() -> Self {
        Self {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
        }
    }
}

impl Argon2Params {
    /// The cheapest parameters argon2 accepts; for tests only.
    pub fn cheapest_for_tests() -> Self {
        Self {
            memory_kib: 8,
            iterations: 1,
            parallelism: 1,
        }
    }
}

#[derive(Clone)]
pub struct PasswordHasher {
    argon2: Argon2<'static>,
    /// A never-matching hash with the configured cost, verified against on unknown emails so that a login for an
    /// unknown email costs the same time as one with a wrong password.
    decoy_hash: String,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher").finish_non_exhaustive()
    }
}

impl PasswordHasher {
    pub fn new(params: Argon2Params) -> Result<Self> {
        let argon2_params = Params::new(
            params.memory_kib,
            params.iterations,
            params.parallelism,
            None,
        )
        .map_err(|e| Error::Internal(format!("invalid Argon2 parameters: {e}")))?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, argon2_params);
        Ok(Self {
            argon2,
            decoy_hash: decoy_hash(params),
        })
    }

    pub fn hash(&self, password: &str) -> Result<String> {
        let salt = SaltString::generate(&mut OsRng);
        self.argon2
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| Error::Internal(format!("password hashing failed: {e}")))
    }

    /// True if `password` matches `hash`. A malformed stored hash counts as no match.
    pub fn verify(&self, password: &str, hash: &str) -> bool {
        match PasswordHash::new(hash) {
            Ok(parsed) => self
                .argon2
                .verify_password(password.as_bytes(), &parsed)
                .is_ok(),
            Err(_) => false,
        }
    }

    /// Spends the time of one verification and answers false (unknown email at login).
    pub fn verify_decoy(&self, password: &str) -> bool {
        let _ = self.verify(password, &self.decoy_hash);
        false
    }

    /// [`PasswordHasher::hash`] on a blocking thread: an Argon2id hash is milliseconds of CPU and
    /// 19 MiB, and on the runtime's own threads a sign-up flood would stall every other request
    /// of the process (the local server serves them all).
    pub async fn hash_async(&self, password: &str) -> Result<String> {
        let (hasher, password) = (self.clone(), password.to_owned());
        tokio::task::spawn_blocking(move || hasher.hash(&password))
            .await
            .map_err(|e| Error::Internal(format!("password hashing did not finish: {e}")))?
    }

    /// [`PasswordHasher::verify`] on a blocking thread (see [`PasswordHasher::hash_async`]).
    pub async fn verify_async(&self, password: &str, hash: &str) -> bool {
        let (hasher, password, hash) = (self.clone(), password.to_owned(), hash.to_owned());
        tokio::task::spawn_blocking(move || hasher.verify(&password, &hash))
            .await
            .unwrap_or(false)
    }

    /// [`PasswordHasher::verify_decoy`] on a blocking thread.
    pub async fn verify_decoy_async(&self, password: &str) -> bool {
        let decoy = self.decoy_hash.clone();
        let _ = self.verify_async(password, &decoy).await;
        false
    }
}

/// A PHC string with the configured parameters, a random salt and a random output: verifying
/// against it costs exactly one Argon2id computation and never matches. Built without hashing,
/// so it adds nothing to a function's cold start.
fn decoy_hash(params: Argon2Params) -> String {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD_NO_PAD;
    let salt: [u8; 16] = rand::random();
    let output: [u8; 32] = rand::random();
    format!(
        "$argon2id$v=19$m={},t={},p={}${}${}",
        params.memory_kib,
        params.iterations,
        params.parallelism,
        STANDARD_NO_PAD.encode(salt),
        STANDARD_NO_PAD.encode(output)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_and_verify() {
        let hasher = PasswordHasher::new(Argon2Params::cheapest_for_tests()).expect("params");
        let hash = hasher.hash("correct horse").expect("hash");
        assert!(hash.starts_with("$argon2id$"));
        assert!(hasher.verify("correct horse", &hash));
        assert!(!hasher.verify("wrong horse", &hash));
        assert!(!hasher.verify("x", "not a phc string"));
        assert!(!hasher.verify_decoy("correct horse"));
    }

    #[test]
    fn the_decoy_is_a_valid_hash_with_the_configured_cost() {
        let params = Argon2Params::cheapest_for_tests();
        let decoy = decoy_hash(params);
        let parsed = PasswordHash::new(&decoy).expect("a PHC string");
        assert_eq!(parsed.algorithm.as_str(), "argon2id");
        let cost = Params::try_from(&parsed).expect("argon2 parameters");
        assert_eq!(
            (cost.m_cost(), cost.t_cost(), cost.p_cost()),
            (params.memory_kib, params.iterations, params.parallelism)
        );
        assert_eq!(parsed.hash.map(|h| h.len()), Some(32));
    }
}

/// The most common passwords of 8 characters or more, lowercased and sorted
/// (`shared/data/README.md`: from Django's list, BSD-3-Clause).
const COMMON_PASSWORDS: &str = include_str!("../../data/common-passwords.txt");

/// True when `password` (in any case) is among the most common breached passwords, or has no
/// variety at all (one character repeated: `aaaaaaaa`, eight spaces). Sign-up refuses these
/// (400ME003); log-in never asks, so a member with such an old password still gets in.
pub fn is_too_common(password: &str) -> bool {
    static LIST: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    let mut chars = password.chars();
    let first = chars.next();
    if chars.all(|c| Some(c) == first) {
        return true;
    }
    let list = LIST.get_or_init(|| COMMON_PASSWORDS.lines().collect());
    list.binary_search(&password.to_lowercase().as_str())
        .is_ok()
}

#[cfg(test)]
mod common_password_tests {
    use super::*;

    #[test]
    fn the_list_is_sorted_and_the_usual_suspects_are_on_it() {
        let list: Vec<&str> = COMMON_PASSWORDS.lines().collect();
        assert!(list.len() > 8_000);
        assert!(
            list.windows(2).all(|w| w[0] < w[1]),
            "sorted, no duplicates"
        );
        for common in [
            "12345678",
            "password",
            "PASSWORD",
            "Password1",
            "iloveyou",
            "qwertyuiop",
        ] {
            assert!(is_too_common(common), "{common}");
        }
        for weak in ["        ", "aaaaaaaa", "11111111111"] {
            assert!(is_too_common(weak), "{weak:?}");
        }
        for fine in ["correct horse battery", "8 chars!", "Kim Minji 1995-04-12"] {
            assert!(!is_too_common(fine), "{fine}");
        }
    }
}
