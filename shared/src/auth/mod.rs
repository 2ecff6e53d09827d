//! Authentication: access tokens (HS256 JWT), refresh tokens (random, stored hashed, rotated),
//! passwords (Argon2id).

pub mod password;
pub mod refresh;
pub mod tokens;

pub use password::PasswordHasher;
pub use tokens::{AccessTokenClaims, TokenSigner};
