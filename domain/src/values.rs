//! Values that can be wrong, parsed once at the edge. Event payloads keep plain strings so that a
//! rule tightened later never breaks the replay of old events.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Why a value was refused; `field` names the input, `code` is stable for clients.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidValue {
    pub field: &'static str,
    pub code: &'static str,
    pub message: String,
}

impl InvalidValue {
    pub fn new(field: &'static str, code: &'static str, message: impl Into<String>) -> Self {
        Self { field, code, message: message.into() }
    }
}

fn clean_text(field: &'static str, raw: &str, max_chars: usize) -> Result<String, InvalidValue> {
    let value = raw.trim();
    if value.is_empty() {
        return Err(InvalidValue::new(field, "required", "must not be empty"));
    }
    if value.chars().count() > max_chars {
        return Err(InvalidValue::new(field, "too_long", format!("must be at most {max_chars} characters")));
    }
    if value.chars().any(char::is_control) {
        return Err(InvalidValue::new(field, "invalid_characters", "must not contain control characters"));
    }
    Ok(value.to_owned())
}

/// A company's display name: trimmed, 1–200 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CompanyName(String);

impl CompanyName {
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        clean_text("name", raw, 200).map(Self)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CompanyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An internet domain name (`acme.example`), stored lower-case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DomainName(String);

impl DomainName {
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let value = raw.trim().trim_end_matches('.').to_ascii_lowercase();
        let invalid =
            || InvalidValue::new("domain", "invalid_domain", "must be a domain name such as example.com");
        if value.is_empty() {
            return Err(InvalidValue::new("domain", "required", "must not be empty"));
        }
        if value.len() > 253 || !value.contains('.') {
            return Err(invalid());
        }
        for label in value.split('.') {
            let ok_len = (1..=63).contains(&label.len());
            let ok_chars = label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
            if !ok_len || !ok_chars || label.starts_with('-') || label.ends_with('-') {
                return Err(invalid());
            }
        }
        Ok(Self(value))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Optional free text (industry, description, website): trimmed, empty means absent.
pub fn optional_text(
    field: &'static str,
    raw: Option<&str>,
    max_chars: usize,
) -> Result<Option<String>, InvalidValue> {
    match raw.map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => clean_text(field, v, max_chars).map(Some),
    }
}

/// Company size bands, as the original API names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompanySize {
    Small,
    Medium,
    Large,
    Enterprise,
}

impl CompanySize {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Small => "small",
            Self::Medium => "medium",
            Self::Large => "large",
            Self::Enterprise => "enterprise",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn company_names_are_trimmed_and_bounded() {
        assert_eq!(CompanyName::parse("  Acme  ").map(|n| n.0), Ok("Acme".into()));
        assert_eq!(CompanyName::parse("   ").map_err(|e| e.code), Err("required"));
        assert_eq!(CompanyName::parse(&"x".repeat(201)).map_err(|e| e.code), Err("too_long"));
        assert_eq!(CompanyName::parse("a\u{0}b").map_err(|e| e.code), Err("invalid_characters"));
    }

    #[test]
    fn domains_are_parsed_not_validated() {
        assert_eq!(DomainName::parse("Acme.Example.").map(|d| d.0), Ok("acme.example".into()));
        for bad in ["localhost", "-a.com", "a..com", "a b.com", "ex_ample.com"] {
            assert!(DomainName::parse(bad).is_err(), "{bad} accepted");
        }
    }
}
