//! Signing keys. Each key has a `kid` (`k<unix seconds>`, so names sort by age); the newest
//! private key signs, every public key verifies, so a rotated-out key keeps verifying the tokens
//! it signed until they expire and its public file is removed.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context};
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::SigningKey;
use jsonwebtoken::{DecodingKey, EncodingKey};

pub struct KeyRing {
    pub signing_kid: String,
    pub signing: EncodingKey,
    pub verifying: HashMap<String, DecodingKey>,
}

/// Writes a new key pair into `dir`; returns its kid.
pub fn generate(dir: &Path) -> anyhow::Result<String> {
    generate_at(dir, chrono::Utc::now())
}

/// [`generate`] as of `at`, which names the key (tests rotate without waiting for the clock).
pub fn generate_at(dir: &Path, at: chrono::DateTime<chrono::Utc>) -> anyhow::Result<String> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let secret: [u8; 32] = rand::random();
    let key = SigningKey::from_bytes(&secret);
    let mut kid = format!("k{}", at.timestamp());
    while dir.join(format!("{kid}.private.pem")).exists() {
        kid.push('x');
    }
    let private = key.to_pkcs8_pem(LineEnding::LF).context("encoding the private key")?;
    let public = key.verifying_key().to_public_key_pem(LineEnding::LF).context("encoding the public key")?;
    let private_path = dir.join(format!("{kid}.private.pem"));
    std::fs::write(&private_path, private.as_bytes())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&private_path, std::fs::Permissions::from_mode(0o600))?;
    }
    std::fs::write(dir.join(format!("{kid}.public.pem")), public)?;
    Ok(kid)
}

impl KeyRing {
    /// Loads the keys in `dir`; generates the first one when `create` and none exists.
    pub fn load(dir: &Path, create: bool) -> anyhow::Result<Self> {
        let mut privates = Vec::new();
        let mut verifying = HashMap::new();
        if dir.exists() {
            for entry in std::fs::read_dir(dir)? {
                let path = entry?.path();
                let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
                if let Some(kid) = name.strip_suffix(".public.pem") {
                    let pem = std::fs::read(&path)?;
                    let key = DecodingKey::from_ed_pem(&pem)
                        .with_context(|| format!("{} is not an Ed25519 public key", path.display()))?;
                    verifying.insert(kid.to_owned(), key);
                } else if let Some(kid) = name.strip_suffix(".private.pem") {
                    privates.push((kid.to_owned(), path.clone()));
                }
            }
        }
        if privates.is_empty() {
            if !create {
                bail!("no signing key in {}; create one with `kraliki keys rotate`", dir.display());
            }
            generate(dir)?;
            return Self::load(dir, false);
        }
        privates.sort();
        let (kid, path) = privates.pop().context("no private key")?;
        let pem = std::fs::read(&path)?;
        let signing = EncodingKey::from_ed_pem(&pem)
            .with_context(|| format!("{} is not an Ed25519 private key", path.display()))?;
        if !verifying.contains_key(&kid) {
            bail!("{kid}.public.pem is missing next to {}", path.display());
        }
        Ok(Self { signing_kid: kid, signing, verifying })
    }
}
