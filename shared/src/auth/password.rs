//! Argon2id password hashing (PHC strings). Parameters come from configuration: production uses
//! OWASP's 19 MiB / 2 iterations / 1 lane; tests use the cheapest valid ones.

use crate::config::Argon2Params;
use crate::error::{Error, Result};
use argon2::password_hash::{PasswordHash, PasswordVerifier, SaltString, rand_core::OsRng};
use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, Version};

#[derive(Clone)]
pub struct PasswordHasher {
    argon2: Argon2<'static>,
    /// A hash of a random password, verified against on unknown emails so that a login for an
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
        let params = Params::new(
            params.memory_kib,
            params.iterations,
            params.parallelism,
            None,
        )
        .map_err(|e| Error::Internal(format!("invalid Argon2 parameters: {e}")))?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let decoy_password: [u8; 16] = rand::random();
        let salt = SaltString::generate(&mut OsRng);
        let decoy_hash = argon2
            .hash_password(&decoy_password, &salt)
            .map_err(|e| Error::Internal(format!("password hashing failed: {e}")))?
            .to_string();
        Ok(Self { argon2, decoy_hash })
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
}
