//! A first pass over a JSON body that refuses what `serde_json` would let through into a
//! handler: duplicate keys in an object (the last one would silently win), and strings or keys
//! holding U+0000 (PostgreSQL stores neither in `text` nor in `jsonb`). It walks the bytes once,
//! keeping nothing but the keys of the object it is in, like `serde::de::IgnoredAny`.

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

pub const DUPLICATE_KEY: &str = "duplicate key";
pub const NUL_CHARACTER: &str = "contains a NUL character";

/// Any JSON value, checked.
pub struct Strict;

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

fn check_text<E: de::Error>(s: &str) -> Result<(), E> {
    if s.contains('\0') {
        Err(E::custom(NUL_CHARACTER))
    } else {
        Ok(())
    }
}

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Strict;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_unit<E>(self) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Strict, E> {
        check_text(s).map(|_| Strict)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
        while seq.next_element::<Strict>()?.is_some() {}
        Ok(Strict)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Strict, A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key_seed(Key)? {
            if seen.contains(&key) {
                // The path of this error is the object's; the key goes in the message.
                return Err(de::Error::custom(format!("{DUPLICATE_KEY}\u{1f}{key}\u{1f}")));
            }
            seen.insert(key);
            map.next_value::<Strict>()?;
        }
        Ok(Strict)
    }
}

/// An object key, kept to find duplicates.
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        let key = String::deserialize(d)?;
        check_text(&key)?;
        Ok(key)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn check(json: &str) -> Result<(), String> {
        let de = &mut serde_json::Deserializer::from_str(json);
        serde_path_to_error::deserialize::<_, Strict>(de)
            .map(|_| ())
            .map_err(|e| format!("{} {}", e.path().clone(), e.into_inner()))
    }

    #[test]
    fn duplicates_and_nul_characters_are_found_with_their_path() {
        assert!(check(r#"{"a": 1, "b": {"c": [1, "x"]}}"#).is_ok());
        let dup = check(r#"{"a": 1, "b": {"c": 1, "c": 2}}"#).unwrap_err();
        assert!(dup.starts_with("b duplicate key\u{1f}c\u{1f}"), "{dup}");
        let nul = check(r#"{"a": [{"b": "x\u0000y"}]}"#).unwrap_err();
        assert!(nul.starts_with("a[0].b contains a NUL"), "{nul}");
        let nul_key = check(r#"{"a\u0000": 1}"#).unwrap_err();
        assert!(nul_key.contains(NUL_CHARACTER), "{nul_key}");
        // A backslash followed by "u0000" is six characters of text, not NUL.
        assert!(check(r#"{"a": "\\u0000"}"#).is_ok());
    }
}
