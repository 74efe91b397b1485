//! Serde helpers shared by the wire formats.

use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// Serializes a plain data structure. Our wire structs have string keys and no maps with
/// non-string keys, so this cannot fail.
pub(crate) fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("wire structs always serialize")
}

pub(crate) fn b64_encode(bytes: &[u8]) -> String {
    BASE64.encode(bytes)
}

pub(crate) fn b64_decode(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    BASE64.decode(text.trim())
}

/// The `event` field every media-stream message has, read before the rest so an unknown event
/// is told apart from a malformed known one.
#[derive(Deserialize)]
pub(crate) struct EventTag<'a> {
    #[serde(borrow)]
    pub event: std::borrow::Cow<'a, str>,
}

/// Counters the providers send as decimal strings (`"sequenceNumber":"3"`); numbers are
/// accepted too, since nothing is lost by being lenient here.
pub(crate) mod num_str {
    use super::*;

    pub fn serialize<S: Serializer>(value: &u64, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(value)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
        deserializer.deserialize_any(NumVisitor)
    }

    struct NumVisitor;

    impl Visitor<'_> for NumVisitor {
        type Value = u64;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a non-negative integer or a string holding one")
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
            Ok(v)
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
            u64::try_from(v).map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
            v.trim().parse().map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
        }
    }
}

/// [`num_str`] for optional fields (absent or `null` → `None`).
pub(crate) mod opt_num_str {
    use super::*;

    pub fn serialize<S: Serializer>(value: &Option<u64>, serializer: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => serializer.collect_str(v),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
        #[derive(Deserialize)]
        struct Wrapped(#[serde(with = "num_str")] u64);
        Ok(Option::<Wrapped>::deserialize(deserializer)?.map(|Wrapped(v)| v))
    }
}

/// A message body with its `event` name, for serializing.
#[derive(Serialize)]
pub(crate) struct Tagged<'a, T: Serialize> {
    pub event: &'a str,
    #[serde(flatten)]
    pub body: &'a T,
}

pub(crate) fn tagged_json<T: Serialize>(event: &str, body: &T) -> String {
    to_json(&Tagged { event, body })
}

/// The body of a known `event`, or why it is malformed.
pub(crate) fn parse_body<T: serde::de::DeserializeOwned>(
    event: &'static str,
    text: &str,
) -> Result<T, super::MediaParseError> {
    serde_json::from_str(text).map_err(|source| super::MediaParseError::Invalid { event, source })
}

/// The `event` name of a message.
pub(crate) fn parse_event(text: &str) -> Result<EventTag<'_>, super::MediaParseError> {
    serde_json::from_str(text).map_err(super::MediaParseError::Json)
}

pub(crate) fn decode_payload(event: &'static str, payload: &str) -> Result<Vec<u8>, super::MediaParseError> {
    b64_decode(payload).map_err(|source| super::MediaParseError::Base64 { event, source })
}

/// `{"name": …}`, the body of `mark` in both dialects.
#[derive(Serialize, Deserialize)]
pub(crate) struct NameBody {
    pub name: String,
}

/// `{"payload": …}`, the body of the `media` we send in both dialects.
#[derive(Serialize, Deserialize)]
pub(crate) struct PayloadBody {
    pub payload: String,
}

/// A binary frame's bytes as text, or a [`super::MediaParseError::Json`].
pub(crate) fn utf8(bytes: &[u8]) -> Result<&str, super::MediaParseError> {
    std::str::from_utf8(bytes).map_err(|e| super::MediaParseError::Json(serde::de::Error::custom(e)))
}

/// Like [`num_str`], but written back as a JSON number (Telnyx's stream error `code`).
pub(crate) mod num {
    use super::*;

    pub fn serialize<S: Serializer>(value: &u64, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(*value)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
        num_str::deserialize(deserializer)
    }
}
