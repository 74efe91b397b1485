//! Twilio webhook authentication: computing and checking the `X-Twilio-Signature` header.
//!
//! The algorithm (as in twilio-python's `RequestValidator`): HMAC-SHA1, keyed by the account's
//! auth token, over the full URL Twilio requested (with its query string) followed by each
//! form parameter's name and value, sorted by name and then by value; base64. Requests with
//! a JSON body are signed over the URL alone, which carries `bodySHA256=<hex SHA-256 of the
//! raw body>`. Twilio may sign with or without the scheme's default port (`:443` / `:80`),
//! so both forms are accepted.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};
use url::Url;

/// The request header carrying the signature.
pub const SIGNATURE_HEADER: &str = "X-Twilio-Signature";
/// The query parameter carrying the body hash of a JSON request.
pub const BODY_HASH_PARAM: &str = "bodySHA256";

/// Length of an HMAC-SHA1 tag.
const TAG_LEN: usize = 20;

/// Checks (and, for tests and fakes, makes) Twilio request signatures for one account.
#[derive(Clone, Debug)]
pub struct TwilioValidator {
    auth_token: SecretString,
}

impl TwilioValidator {
    pub fn new(auth_token: SecretString) -> Self {
        Self { auth_token }
    }

    /// The signature Twilio would send for a form POST (or GET, with no `params`) to exactly
    /// `url`. For a JSON body, sign [`url_with_body_hash`] with no params.
    pub fn sign<K: AsRef<str>, V: AsRef<str>>(&self, url: &str, params: &[(K, V)]) -> String {
        BASE64.encode(self.tag(url, params))
    }

    /// Whether `signature` is valid for a form-encoded request to `url` with `params`
    /// (the decoded body fields, in any order; repeated names allowed).
    pub fn validate_form<K: AsRef<str>, V: AsRef<str>>(
        &self,
        url: &str,
        params: &[(K, V)],
        signature: &str,
    ) -> bool {
        self.check_signature(url, params, signature).into()
    }

    /// Whether `signature` is valid for a JSON request to `url` with raw body `body`: the
    /// URL's `bodySHA256` must be the body's hash and the signature must cover the URL.
    pub fn validate_json(&self, url: &str, body: &[u8], signature: &str) -> bool {
        let Ok(parsed) = Url::parse(url) else {
            return false;
        };
        let Some((_, claimed)) = parsed.query_pairs().find(|(name, _)| name == BODY_HASH_PARAM) else {
            return false;
        };
        let body_ok = body_sha256_hex(body).as_bytes().ct_eq(claimed.to_ascii_lowercase().as_bytes());
        // Check both without short-circuiting so timing does not tell which one failed.
        let signature_ok = self.check_signature(url, &[] as &[(&str, &str)], signature);
        (body_ok & signature_ok).into()
    }

    fn check_signature<K: AsRef<str>, V: AsRef<str>>(
        &self,
        url: &str,
        params: &[(K, V)],
        signature: &str,
    ) -> Choice {
        let provided = match BASE64.decode(signature.trim()) {
            Ok(bytes) if bytes.len() == TAG_LEN => bytes,
            _ => return Choice::from(0),
        };
        let Some(alternate) = default_port_variant(url) else {
            return Choice::from(0);
        };
        let mut ok = self.tag(url, params).ct_eq(&provided);
        if let Some(alternate) = alternate {
            ok |= self.tag(&alternate, params).ct_eq(&provided);
        }
        ok
    }

    fn tag<K: AsRef<str>, V: AsRef<str>>(&self, url: &str, params: &[(K, V)]) -> [u8; TAG_LEN] {
        let mut sorted: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_ref(), v.as_ref())).collect();
        // Byte order of UTF-8 is code-point order, which is how Twilio sorts.
        sorted.sort_unstable();
        let mut mac = Hmac::<Sha1>::new_from_slice(self.auth_token.expose_secret().as_bytes())
            .expect("HMAC takes keys of any length");
        mac.update(url.as_bytes());
        for (name, value) in sorted {
            mac.update(name.as_bytes());
            mac.update(value.as_bytes());
        }
        mac.finalize().into_bytes().into()
    }
}

/// Lower-case hex SHA-256 of a request body, as Twilio puts it in `bodySHA256`.
pub fn body_sha256_hex(body: &[u8]) -> String {
    Sha256::digest(body).iter().map(|b| format!("{b:02x}")).collect()
}

/// `url` with `bodySHA256=<hash of body>` appended to its query, as Twilio requests it for a
/// JSON body (for tests and fakes; the fragment, if any, stays last).
pub fn url_with_body_hash(url: &str, body: &[u8]) -> String {
    let (base, fragment) = url.split_once('#').map_or((url, None), |(b, f)| (b, Some(f)));
    let separator = match base.find('?') {
        None => "?",
        Some(i) if i + 1 == base.len() || base.ends_with('&') => "",
        Some(_) => "&",
    };
    let mut out = format!("{base}{separator}{BODY_HASH_PARAM}={}", body_sha256_hex(body));
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

/// The other spelling of `url` Twilio may have signed: without its port if that is the
/// scheme's default, or with the default port added if it has none. `Some(None)` when there
/// is no other spelling (a non-default port, or a scheme without a default); `None` when
/// `url` is not an absolute URL.
///
/// Works on the raw text rather than on `Url`'s serialization, because the signature covers
/// the URL exactly as Twilio wrote it and `Url` normalizes (it drops default ports, among
/// other things).
fn default_port_variant(url: &str) -> Option<Option<String>> {
    let parsed = Url::parse(url).ok()?;
    let default_port: u16 = match parsed.scheme() {
        "https" | "wss" => 443,
        "http" | "ws" => 80,
        _ => return Some(None),
    };
    let Some(scheme_end) = url.find("://") else {
        return Some(None);
    };
    let authority_start = scheme_end + 3;
    let rest = &url[authority_start..];
    let authority_end = authority_start + rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &url[authority_start..authority_end];
    // The port follows the last ':' after any user info and IPv6 literal.
    let host_start = authority.rfind('@').map_or(0, |i| i + 1);
    let after_ipv6 = authority[host_start..].rfind(']').map_or(host_start, |i| host_start + i + 1);
    match authority[after_ipv6..].rfind(':') {
        Some(colon) => {
            let colon = authority_start + after_ipv6 + colon;
            let port = &url[colon + 1..authority_end];
            if port.parse::<u16>().ok() == Some(default_port) {
                Some(Some(format!("{}{}", &url[..colon], &url[authority_end..])))
            } else {
                Some(None)
            }
        }
        None => Some(Some(format!("{}:{default_port}{}", &url[..authority_end], &url[authority_end..]))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // Vectors from twilio-python `tests/unit/test_request_validator.py`.
    const TOKEN: &str = "12345";
    const URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";
    const URL_443: &str = "https://mycompany.com:443/myapp.php?foo=1&bar=2";
    const SIGNATURE: &str = "RSOYDt4T1cUTdK1PDd93/VVr8B8=";
    const SIGNATURE_443: &str = "kvajT1Ptam85bY51eRf/AJRuM3w=";
    const BODY: &str = r#"{"property": "value", "boolean": true}"#;
    const BODY_HASH: &str = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620";
    const BODY_SIGNATURE: &str = "a9nBmqA0ju/hNViExpshrM61xv4=";

    fn validator() -> TwilioValidator {
        TwilioValidator::new(SecretString::from(TOKEN))
    }

    fn params() -> Vec<(String, String)> {
        [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675309"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    fn json_url() -> String {
        format!("{URL}&bodySHA256={BODY_HASH}")
    }

    #[test]
    fn signs_the_upstream_form_vectors() {
        assert_eq!(validator().sign(URL, &params()), SIGNATURE);
        assert_eq!(validator().sign(URL_443, &params()), SIGNATURE_443);
    }

    #[test]
    fn accepts_either_signature_at_either_url_spelling() {
        let v = validator();
        for url in [URL, URL_443] {
            for signature in [SIGNATURE, SIGNATURE_443] {
                assert!(v.validate_form(url, &params(), signature), "{url} with {signature}");
            }
        }
    }

    #[test]
    fn parameter_order_does_not_matter() {
        let mut shuffled = params();
        shuffled.reverse();
        shuffled.swap(0, 2);
        assert!(validator().validate_form(URL, &shuffled, SIGNATURE));
        let borrowed: Vec<(&str, &str)> = shuffled.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(validator().sign(URL, &borrowed), SIGNATURE);
    }

    #[test]
    fn repeated_names_are_signed_with_values_sorted() {
        let v = validator();
        let url = "https://ex.com/hook";
        let signature = v.sign(url, &[("a", "1"), ("a", "2"), ("b", "0")]);
        assert!(v.validate_form(url, &[("b", "0"), ("a", "2"), ("a", "1")], &signature));
        // The signed string is the URL then name+value pairs in order.
        let mut mac = Hmac::<Sha1>::new_from_slice(TOKEN.as_bytes()).unwrap();
        mac.update(b"https://ex.com/hooka1a2b0");
        assert_eq!(signature, BASE64.encode(mac.finalize().into_bytes()));
    }

    #[test]
    fn plain_http_accepts_port_80_both_ways() {
        let v = validator();
        let (bare, ported) = ("http://ex.com/voice?x=1", "http://ex.com:80/voice?x=1");
        for signed in [bare, ported] {
            let signature = v.sign(signed, &params());
            assert!(v.validate_form(bare, &params(), &signature));
            assert!(v.validate_form(ported, &params(), &signature));
        }
        // A port that is default only for the other scheme is not dropped.
        let signature = v.sign("http://ex.com/voice", &params());
        assert!(!v.validate_form("http://ex.com:443/voice", &params(), &signature));
    }

    #[test]
    fn a_non_default_port_is_kept() {
        let v = validator();
        let signature = v.sign("https://ex.com:8443/voice", &params());
        assert!(v.validate_form("https://ex.com:8443/voice", &params(), &signature));
        assert!(!v.validate_form("https://ex.com/voice", &params(), &signature));
        assert!(!v.validate_form("https://ex.com:443/voice", &params(), &signature));
    }

    #[test]
    fn port_variants_keep_user_info_ipv6_and_the_rest_verbatim() {
        let cases = [
            ("https://u:p@Ex.com/a%2Fb?q=1#f", "https://u:p@Ex.com:443/a%2Fb?q=1#f"),
            ("https://[::1]:443/x", "https://[::1]/x"),
            ("https://[::1]/x", "https://[::1]:443/x"),
            ("https://ex.com?x=1", "https://ex.com:443?x=1"),
            ("wss://ex.com:443", "wss://ex.com"),
        ];
        for (url, variant) in cases {
            assert_eq!(default_port_variant(url), Some(Some(variant.to_owned())), "{url}");
        }
        assert_eq!(default_port_variant("https://ex.com:8443/x"), Some(None));
        assert_eq!(default_port_variant("/relative"), None);
    }

    #[test]
    fn hashes_and_signs_the_upstream_json_vector() {
        assert_eq!(body_sha256_hex(BODY.as_bytes()), BODY_HASH);
        assert_eq!(url_with_body_hash(URL, BODY.as_bytes()), json_url());
        assert_eq!(validator().sign(&json_url(), &[] as &[(&str, &str)]), BODY_SIGNATURE);
    }

    #[test]
    fn validates_the_upstream_json_vector() {
        let v = validator();
        assert!(v.validate_json(&json_url(), BODY.as_bytes(), BODY_SIGNATURE));
        let ported = json_url().replace("mycompany.com", "mycompany.com:443");
        assert!(v.validate_json(&ported, BODY.as_bytes(), BODY_SIGNATURE));
        // Upper-case hex in the URL is the same hash (the signature then covers that spelling).
        let upper = format!("{URL}&bodySHA256={}", BODY_HASH.to_uppercase());
        assert!(v.validate_json(&upper, BODY.as_bytes(), &v.sign(&upper, &[] as &[(&str, &str)])));
    }

    #[test]
    fn url_with_body_hash_handles_any_query_shape() {
        let hash = body_sha256_hex(b"{}");
        assert_eq!(
            url_with_body_hash("https://ex.com/a", b"{}"),
            format!("https://ex.com/a?bodySHA256={hash}")
        );
        assert_eq!(
            url_with_body_hash("https://ex.com/a?", b"{}"),
            format!("https://ex.com/a?bodySHA256={hash}")
        );
        assert_eq!(
            url_with_body_hash("https://ex.com/a?x=1#f", b"{}"),
            format!("https://ex.com/a?x=1&bodySHA256={hash}#f")
        );
    }

    #[test]
    fn rejects_tampered_form_requests() {
        let v = validator();
        let mut changed = params();
        changed[2].1 = "1235".to_owned();
        assert!(!v.validate_form(URL, &changed, SIGNATURE), "changed value");
        let mut extra = params();
        extra.push(("Evil".to_owned(), "1".to_owned()));
        assert!(!v.validate_form(URL, &extra, SIGNATURE), "added param");
        assert!(!v.validate_form(URL, &params()[1..], SIGNATURE), "dropped param");
        assert!(
            !v.validate_form("https://mycompany.com/myapp.php?foo=1&bar=3", &params(), SIGNATURE),
            "query"
        );
        assert!(!v.validate_form("https://evil.com/myapp.php?foo=1&bar=2", &params(), SIGNATURE), "host");
        assert!(
            !v.validate_form("http://mycompany.com/myapp.php?foo=1&bar=2", &params(), SIGNATURE),
            "scheme"
        );
    }

    #[test]
    fn rejects_tampered_json_requests() {
        let v = validator();
        let tampered = br#"{"property": "value", "boolean": false}"#;
        assert!(!v.validate_json(&json_url(), tampered, BODY_SIGNATURE), "changed body");
        assert!(!v.validate_json(&json_url(), b"", BODY_SIGNATURE), "empty body");
        // A matching hash does not help if the signature is over another URL.
        let rehashed = url_with_body_hash(URL, tampered);
        assert!(!v.validate_json(&rehashed, tampered, BODY_SIGNATURE), "rehashed body");
        assert!(!v.validate_json(URL, BODY.as_bytes(), SIGNATURE), "no bodySHA256 in the URL");
    }

    #[test]
    fn rejects_the_wrong_token() {
        let other = TwilioValidator::new(SecretString::from("54321"));
        assert!(!other.validate_form(URL, &params(), SIGNATURE));
        assert!(!other.validate_json(&json_url(), BODY.as_bytes(), BODY_SIGNATURE));
    }

    #[test]
    fn rejects_missing_and_garbage_signatures() {
        let v = validator();
        let short = BASE64.encode([0u8; 19]);
        let zeros = BASE64.encode([0u8; TAG_LEN]);
        let truncated = &SIGNATURE[..SIGNATURE.len() - 2];
        for signature in ["", "   ", "not base64!", truncated, short.as_str(), zeros.as_str()] {
            assert!(!v.validate_form(URL, &params(), signature), "{signature:?}");
            assert!(!v.validate_json(&json_url(), BODY.as_bytes(), signature), "{signature:?}");
        }
        assert!(!v.validate_form("not a url", &params(), SIGNATURE));
    }

    #[test]
    fn debug_output_hides_the_token() {
        let v = TwilioValidator::new(SecretString::from("super-secret-token"));
        assert!(!format!("{v:?}").contains("super-secret-token"));
    }

    proptest! {
        #[test]
        fn any_signed_request_validates_and_any_changed_value_does_not(
            params in proptest::collection::vec(("[A-Za-z]{1,8}", "\\PC{0,12}"), 1..6),
            path in "[a-z]{1,10}",
            which in any::<prop::sample::Index>(),
        ) {
            let v = validator();
            let url = format!("https://ex.com/{path}?a=1");
            let signature = v.sign(&url, &params);
            prop_assert!(v.validate_form(&url, &params, &signature));
            let mut changed = params.clone();
            let i = which.index(changed.len());
            changed[i].1.push('x');
            prop_assert!(!v.validate_form(&url, &changed, &signature));
        }
    }
}
