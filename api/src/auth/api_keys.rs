//! API keys of service accounts: `kvk_<key id>_<secret>`. The secret is 256 random bits, shown
//! once; only its SHA-256 is stored.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use subtle::ConstantTimeEq;
use uuid::Uuid;

pub const PREFIX: &str = "kvk_";

pub struct NewKey {
    pub key_id: Uuid,
    /// The whole key, to show once.
    pub key: String,
    /// What people see to tell keys apart.
    pub display_prefix: String,
    pub secret_hash: Vec<u8>,
}

pub fn generate() -> NewKey {
    let key_id = Uuid::now_v7();
    let secret: [u8; 32] = rand::random();
    let secret = URL_SAFE_NO_PAD.encode(secret);
    let key = format!("{PREFIX}{}_{secret}", key_id.simple());
    let display_prefix = key[..PREFIX.len() + 8].to_owned();
    NewKey { key_id, key, display_prefix, secret_hash: Sha256::digest(secret.as_bytes()).to_vec() }
}

/// Splits a presented key into its id and secret.
pub fn parse(key: &str) -> Option<(Uuid, &str)> {
    let rest = key.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    Some((Uuid::try_parse(id).ok()?, secret))
}

/// The account a presented key belongs to, if the key is known, unrevoked and its secret
/// matches (compared in constant time).
pub async fn check(pool: &PgPool, key: &str) -> Result<Option<(Uuid, Uuid)>, sqlx::Error> {
    let Some((key_id, secret)) = parse(key) else { return Ok(None) };
    let row: Option<(Uuid, Vec<u8>)> = sqlx::query_as(
        "SELECT account_id, secret_hash FROM api_keys WHERE key_id = $1 AND revoked_at IS NULL",
    )
    .bind(key_id)
    .fetch_optional(pool)
    .await?;
    let presented = Sha256::digest(secret.as_bytes());
    Ok(row.and_then(|(account, stored)| {
        bool::from(presented.as_slice().ct_eq(&stored)).then_some((account, key_id))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_back_to_their_id() {
        let k = generate();
        let (id, secret) = parse(&k.key).expect("parses");
        assert_eq!(id, k.key_id);
        assert_eq!(Sha256::digest(secret.as_bytes()).to_vec(), k.secret_hash);
        assert!(k.key.starts_with(&k.display_prefix));
        assert_eq!(parse("kvk_nope"), None);
        assert_eq!(parse("Bearer x"), None);
    }
}
