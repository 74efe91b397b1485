//! Who is calling: Ed25519-signed JWTs (access and rotating refresh tokens), bcrypt passwords,
//! login throttling, and the `AuthUser` extractor with role checks.

pub mod api_keys;
pub mod extract;
pub mod keys;
pub mod passwords;
pub mod principals;
pub mod tokens;
pub mod users;

pub use extract::AuthUser;
pub use keys::KeyRing;
pub use principals::Principals;
