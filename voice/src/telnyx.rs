//! Telnyx webhook authentication: verifying the Ed25519 `telnyx-signature-ed25519` header.
//!
//! Telnyx signs `"{telnyx-timestamp}|{raw body}"` with the account's Ed25519 key and sends the
//! base64 signature; the public key (base64 of 32 bytes) is in the portal. A timestamp more
//! than five minutes from our clock is rejected so a captured request cannot be replayed later.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey, PUBLIC_KEY_LENGTH, SIGNATURE_LENGTH};

/// The request header carrying the base64 signature.
pub const SIGNATURE_HEADER: &str = "telnyx-signature-ed25519";
/// The request header carrying the Unix timestamp (seconds) that is signed with the body.
pub const TIMESTAMP_HEADER: &str = "telnyx-timestamp";
/// Largest accepted difference between the signed timestamp and our clock, either way.
pub const TIMESTAMP_TOLERANCE_SECS: u64 = 300;

/// Why a public key could not be loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("Telnyx public key is not valid base64")]
    Base64,
    #[error("Telnyx public key must be {PUBLIC_KEY_LENGTH} bytes, got {0}")]
    Length(usize),
    #[error("Telnyx public key is not a valid Ed25519 key")]
    Invalid,
}

/// Why a webhook was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("signature header is not base64 of {SIGNATURE_LENGTH} bytes")]
    MalformedSignature,
    #[error("timestamp header is not an integer number of seconds")]
    MalformedTimestamp,
    #[error("timestamp {timestamp} is more than {TIMESTAMP_TOLERANCE_SECS} s from now ({now})")]
    TimestampOutOfTolerance { timestamp: i64, now: i64 },
    #[error("signature does not match the timestamp and body")]
    BadSignature,
}

impl VerifyError {
    /// Whether the request was malformed rather than carrying a wrong or stale signature.
    pub fn is_encoding(&self) -> bool {
        matches!(self, Self::MalformedSignature | Self::MalformedTimestamp)
    }
}

/// Verifies Telnyx webhook signatures against one account's public key.
#[derive(Debug, Clone)]
pub struct TelnyxVerifier {
    key: VerifyingKey,
}

impl TelnyxVerifier {
    /// Loads the public key as shown in the Telnyx portal (base64 of 32 bytes).
    pub fn from_base64_key(key_b64: &str) -> Result<Self, KeyError> {
        let bytes = BASE64.decode(key_b64.trim()).map_err(|_| KeyError::Base64)?;
        let bytes: [u8; PUBLIC_KEY_LENGTH] =
            bytes.as_slice().try_into().map_err(|_| KeyError::Length(bytes.len()))?;
        Self::from_bytes(&bytes)
    }

    pub fn from_bytes(key: &[u8; PUBLIC_KEY_LENGTH]) -> Result<Self, KeyError> {
        VerifyingKey::from_bytes(key).map(|key| Self { key }).map_err(|_| KeyError::Invalid)
    }

    /// Checks the `telnyx-signature-ed25519` and `telnyx-timestamp` header values against the
    /// raw request body, at Unix time `now_unix` (a parameter so callers and tests control
    /// the clock).
    pub fn verify(
        &self,
        signature_b64: &str,
        timestamp: &str,
        body: &[u8],
        now_unix: i64,
    ) -> Result<(), VerifyError> {
        let signature = BASE64
            .decode(signature_b64.trim())
            .ok()
            .and_then(|bytes| Signature::from_slice(&bytes).ok())
            .ok_or(VerifyError::MalformedSignature)?;
        let signed_at: i64 = timestamp.parse().map_err(|_| VerifyError::MalformedTimestamp)?;
        // Checked before the signature: cheap, and a stale request is rejected either way.
        if signed_at.abs_diff(now_unix) > TIMESTAMP_TOLERANCE_SECS {
            return Err(VerifyError::TimestampOutOfTolerance { timestamp: signed_at, now: now_unix });
        }
        // Strict verification also refuses malleable signatures and weak keys, which a genuine
        // Telnyx signature never is.
        self.key
            .verify_strict(&signed_message(timestamp, body), &signature)
            .map_err(|_| VerifyError::BadSignature)
    }
}

/// Signs webhooks as Telnyx does, for tests and a fake Telnyx; production only verifies.
#[derive(Debug, Clone)]
pub struct TelnyxSigner {
    key: SigningKey,
}

impl TelnyxSigner {
    /// From a 32-byte Ed25519 secret key (seed).
    pub fn from_secret_bytes(secret: &[u8; 32]) -> Self {
        Self { key: SigningKey::from_bytes(secret) }
    }

    /// The public key as Telnyx shows it: base64 of 32 bytes.
    pub fn public_key_base64(&self) -> String {
        BASE64.encode(self.key.verifying_key().as_bytes())
    }

    pub fn verifier(&self) -> TelnyxVerifier {
        TelnyxVerifier { key: self.key.verifying_key() }
    }

    /// The `telnyx-signature-ed25519` header value for `timestamp` and `body`.
    pub fn sign(&self, timestamp: &str, body: &[u8]) -> String {
        BASE64.encode(self.key.sign(&signed_message(timestamp, body)).to_bytes())
    }
}

fn signed_message(timestamp: &str, body: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(timestamp.len() + 1 + body.len());
    message.extend_from_slice(timestamp.as_bytes());
    message.push(b'|');
    message.extend_from_slice(body);
    message
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    // The vector from PROTOCOLS.md; the key pair is RFC 8032 test 1.
    const PUBLIC_KEY: &str = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
    const TIMESTAMP: &str = "1767225600";
    const NOW: i64 = 1_767_225_600;
    const BODY: &str = r#"{"data":{"event_type":"call.hangup","payload":{"call_control_id":"v3:abc","hangup_cause":"normal_clearing"}}}"#;
    const SIGNATURE: &str =
        "va1gK/EmJSsJhHQiHMlqlYeGNCJoPL3s2+N4lM6o6HVpNtz7uy7FbidwJNPg1YiJF0Y+6XH6k+Yy/zObKAvmAQ==";
    const RFC8032_TEST1_SECRET: [u8; 32] = [
        0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec, 0x2c, 0xc4, 0x44,
        0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19, 0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae, 0x7f, 0x60,
    ];

    fn verifier() -> TelnyxVerifier {
        TelnyxVerifier::from_base64_key(PUBLIC_KEY).unwrap()
    }

    #[test]
    fn verifies_the_protocol_vector() {
        assert_eq!(verifier().verify(SIGNATURE, TIMESTAMP, BODY.as_bytes(), NOW), Ok(()));
    }

    #[test]
    fn accepts_up_to_300_seconds_either_way_and_no_more() {
        let v = verifier();
        for now in [NOW - 300, NOW + 300] {
            assert_eq!(v.verify(SIGNATURE, TIMESTAMP, BODY.as_bytes(), now), Ok(()), "now = {now}");
        }
        for now in [NOW + 301, NOW - 301, 0, i64::MAX, i64::MIN] {
            assert_eq!(
                v.verify(SIGNATURE, TIMESTAMP, BODY.as_bytes(), now),
                Err(VerifyError::TimestampOutOfTolerance { timestamp: NOW, now }),
                "now = {now}"
            );
        }
    }

    #[test]
    fn rejects_a_changed_body() {
        let body = BODY.replace("normal_clearing", "user_busy");
        assert_eq!(
            verifier().verify(SIGNATURE, TIMESTAMP, body.as_bytes(), NOW),
            Err(VerifyError::BadSignature)
        );
        let with_space = format!("{BODY} ");
        assert_eq!(
            verifier().verify(SIGNATURE, TIMESTAMP, with_space.as_bytes(), NOW),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn rejects_a_changed_timestamp_even_within_tolerance() {
        assert_eq!(
            verifier().verify(SIGNATURE, "1767225601", BODY.as_bytes(), NOW),
            Err(VerifyError::BadSignature)
        );
        // Same number, different text: the signature covers the header as sent.
        assert_eq!(
            verifier().verify(SIGNATURE, "+1767225600", BODY.as_bytes(), NOW),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn rejects_malformed_headers() {
        let v = verifier();
        let body = BODY.as_bytes();
        let short = BASE64.encode([0u8; 63]);
        for signature in ["", "garbage!!", "va1gK/EmJSsJhHQiHMlqlYeGNCJoPL3s2", short.as_str()] {
            let err = v.verify(signature, TIMESTAMP, body, NOW).unwrap_err();
            assert_eq!(err, VerifyError::MalformedSignature, "{signature:?}");
            assert!(err.is_encoding());
        }
        for timestamp in ["", "soon", "1767225600.5", "99999999999999999999"] {
            assert_eq!(
                v.verify(SIGNATURE, timestamp, body, NOW),
                Err(VerifyError::MalformedTimestamp),
                "{timestamp:?}"
            );
        }
        // Well-formed but not a signature by this key.
        let zeros = BASE64.encode([0u8; 64]);
        let err = v.verify(&zeros, TIMESTAMP, body, NOW).unwrap_err();
        assert_eq!(err, VerifyError::BadSignature);
        assert!(!err.is_encoding());
    }

    #[test]
    fn rejects_a_signature_from_another_key() {
        let other = TelnyxSigner::from_secret_bytes(&[7; 32]);
        let signature = other.sign(TIMESTAMP, BODY.as_bytes());
        assert_eq!(
            verifier().verify(&signature, TIMESTAMP, BODY.as_bytes(), NOW),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(other.verifier().verify(&signature, TIMESTAMP, BODY.as_bytes(), NOW), Ok(()));
    }

    #[test]
    fn loads_keys_strictly() {
        assert_eq!(TelnyxVerifier::from_base64_key("not base64!").unwrap_err(), KeyError::Base64);
        assert_eq!(
            TelnyxVerifier::from_base64_key(&BASE64.encode([1u8; 31])).unwrap_err(),
            KeyError::Length(31)
        );
        assert_eq!(
            TelnyxVerifier::from_base64_key(&BASE64.encode([1u8; 33])).unwrap_err(),
            KeyError::Length(33)
        );
        // Tolerates a trailing newline from a pasted secret.
        assert!(TelnyxVerifier::from_base64_key(&format!("{PUBLIC_KEY}\n")).is_ok());
    }

    #[test]
    fn the_signer_reproduces_the_protocol_vector() {
        let signer = TelnyxSigner::from_secret_bytes(&RFC8032_TEST1_SECRET);
        assert_eq!(signer.public_key_base64(), PUBLIC_KEY);
        assert_eq!(signer.sign(TIMESTAMP, BODY.as_bytes()), SIGNATURE);
        // And signs other requests the verifier accepts.
        let body = br#"{"data":{"event_type":"call.initiated"}}"#;
        let signature = signer.sign("1767225900", body);
        assert_eq!(verifier().verify(&signature, "1767225900", body, NOW + 250), Ok(()));
        assert_eq!(
            verifier().verify(&signature, "1767225900", b"", NOW + 250),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn debug_output_hides_the_secret_key() {
        let signer = TelnyxSigner::from_secret_bytes(&RFC8032_TEST1_SECRET);
        let debug = format!("{signer:?}");
        let secret_prefix = format!("{:?}", &RFC8032_TEST1_SECRET[..6]);
        assert!(!debug.contains(secret_prefix.trim_end_matches(']')), "{debug}");
    }
}
