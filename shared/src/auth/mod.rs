//! Authentication: access tokens (EdDSA JWT, Ed25519 keys with rotation), refresh tokens
//! (random, stored hashed, rotated), passwords (Argon2id).

pub mod device;
pub mod keys;
pub mod password;
pub mod refresh;
pub mod rotation;
pub mod tokens;

pub use keys::{Jwks, SigningKeyset};
pub use password::PasswordHasher;
pub use tokens::{AccessTokenClaims, AccessTokens};
