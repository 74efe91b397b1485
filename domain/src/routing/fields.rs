//! Field checks shared by agents, teams, queues and routing rules: skill names and levels,
//! language tags, and a pre-pass over raw JSON so that every unknown enum value and every bad
//! level is reported at once (serde alone stops at the first).

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::values::InvalidValue;

/// The longest skill name accepted.
pub const MAX_SKILL_NAME: usize = 64;

/// A skill name as stored: trimmed, lower-case, 1–64 characters, no control characters.
pub fn skill_name(field: &str, raw: &str) -> Result<String, InvalidValue> {
    let name = raw.trim().to_lowercase();
    if name.is_empty() {
        return Err(InvalidValue::new(field.to_owned(), "required", "a skill needs a name"));
    }
    if name.chars().count() > MAX_SKILL_NAME {
        return Err(InvalidValue::new(
            field.to_owned(),
            "too_long",
            format!("at most {MAX_SKILL_NAME} characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(InvalidValue::new(field.to_owned(), "invalid_characters", "no control characters"));
    }
    Ok(name)
}

/// Whether a proficiency or minimum level is on the 1–5 scale.
pub fn is_level(level: u8) -> bool {
    (1..=5).contains(&level)
}

/// Checks a map of name → level (1–5) and normalizes the names (`skill_name`); problems are
/// named `{field}.{name}`. Two names equal after normalizing are reported as a duplicate.
pub fn skill_levels(
    field: &str,
    skills: &BTreeMap<String, u8>,
    problems: &mut Vec<InvalidValue>,
) -> BTreeMap<String, u8> {
    let mut out = BTreeMap::new();
    for (raw, level) in skills {
        let at = format!("{field}.{raw}");
        match skill_name(&at, raw) {
            Ok(name) => {
                if !is_level(*level) {
                    problems.push(InvalidValue::new(at, "out_of_range", "a level from 1 to 5"));
                } else if out.insert(name, *level).is_some() {
                    problems.push(InvalidValue::new(at, "duplicate_skill", "the same skill twice"));
                }
            }
            Err(e) => problems.push(e),
        }
    }
    out
}

/// A language as a BCP 47 primary subtag: 2–3 ASCII letters, lower-cased (`en`, `es`, `cs`).
pub fn language_tag(field: &str, raw: &str) -> Result<String, InvalidValue> {
    let tag = raw.trim().to_ascii_lowercase();
    if (2..=3).contains(&tag.len()) && tag.bytes().all(|b| b.is_ascii_lowercase()) {
        Ok(tag)
    } else {
        Err(InvalidValue::new(
            field.to_owned(),
            "invalid_language",
            "a primary language tag such as en, es or cs",
        ))
    }
}

/// Checks a map of language → proficiency (1–5), normalizing the tags.
pub fn language_levels(
    field: &str,
    languages: &BTreeMap<String, u8>,
    problems: &mut Vec<InvalidValue>,
) -> BTreeMap<String, u8> {
    let mut out = BTreeMap::new();
    for (raw, level) in languages {
        let at = format!("{field}.{raw}");
        match language_tag(&at, raw) {
            Ok(tag) => {
                if !is_level(*level) {
                    problems.push(InvalidValue::new(at, "out_of_range", "a proficiency from 1 to 5"));
                } else if out.insert(tag, *level).is_some() {
                    problems.push(InvalidValue::new(at, "duplicate_language", "the same language twice"));
                }
            }
            Err(e) => problems.push(e),
        }
    }
    out
}

/// Trimmed optional text; empty is absent; longer than `max` or with control characters is a
/// problem (pushed) and the value is kept as given.
pub fn optional_text(field: &str, value: &mut Option<String>, max: usize, problems: &mut Vec<InvalidValue>) {
    if let Some(v) = value.as_deref() {
        let trimmed = v.trim();
        if trimmed.is_empty() {
            *value = None;
        } else if trimmed.chars().count() > max {
            problems.push(InvalidValue::new(
                field.to_owned(),
                "too_long",
                format!("at most {max} characters"),
            ));
        } else if trimmed.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
            problems.push(InvalidValue::new(field.to_owned(), "invalid_characters", "no control characters"));
        } else {
            *value = Some(trimmed.to_owned());
        }
    }
}

/// Reports `value` (the JSON at `field`) unless it is absent, null when `nullable`, or a string
/// among `allowed`.
pub(crate) fn check_enum(
    field: &str,
    value: Option<&Value>,
    allowed: &[&str],
    nullable: bool,
    problems: &mut Vec<InvalidValue>,
) {
    let ok = match value {
        None => true,
        Some(Value::Null) => nullable,
        Some(Value::String(s)) => allowed.contains(&s.as_str()),
        Some(_) => false,
    };
    if !ok {
        problems.push(InvalidValue::new(
            field.to_owned(),
            "unknown_value",
            format!("one of: {}", allowed.join(", ")),
        ));
    }
}

/// Reports every entry of a JSON object of levels (`{"billing": 7}`) that is not an integer
/// from 1 to 5, and a value that is not an object at all.
pub(crate) fn check_levels(field: &str, value: Option<&Value>, problems: &mut Vec<InvalidValue>) {
    match value {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (name, level) in map {
                let ok = level.as_u64().is_some_and(|l| (1..=5).contains(&l));
                if !ok {
                    problems.push(InvalidValue::new(
                        format!("{field}.{name}"),
                        "out_of_range",
                        "a level from 1 to 5",
                    ));
                }
            }
        }
        Some(_) => {
            problems.push(InvalidValue::new(field.to_owned(), "invalid", "an object of name → level (1–5)"))
        }
    }
}

/// Deserializes `value` after a pre-pass found `problems`: on a serde error, its problem is
/// added unless the pre-pass already named that field; any problem makes the result an error.
pub(crate) fn parse_checked<T: DeserializeOwned>(
    value: Value,
    mut problems: Vec<InvalidValue>,
) -> Result<T, Vec<InvalidValue>> {
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(parsed) if problems.is_empty() => Ok(parsed),
        Ok(_) => Err(problems),
        Err(e) => {
            let path = e.path().to_string();
            let field = if path == "." { "body".to_owned() } else { path };
            if !problems.iter().any(|p| p.field == field) {
                problems.push(InvalidValue::new(field, "invalid", e.into_inner().to_string()));
            }
            Err(problems)
        }
    }
}

/// Merges the pre-pass problems with the typed checks' problems, dropping repeats of a field
/// and code already reported.
pub(crate) fn merge_problems(first: Vec<InvalidValue>, then: Vec<InvalidValue>) -> Vec<InvalidValue> {
    let mut all = first;
    for p in then {
        if !all.iter().any(|q| q.field == p.field && q.code == p.code) {
            all.push(p);
        }
    }
    all
}

/// The top-level keys whose JSON differs between two serializable values.
pub(crate) fn changed_fields<T: serde::Serialize>(before: &T, after: &T) -> Vec<String> {
    let (Ok(Value::Object(a)), Ok(Value::Object(b))) =
        (serde_json::to_value(before), serde_json::to_value(after))
    else {
        return Vec::new();
    };
    let mut keys: Vec<String> = a.keys().chain(b.keys()).cloned().collect();
    keys.sort();
    keys.dedup();
    keys.retain(|k| a.get(k) != b.get(k));
    keys
}

/// `value` with an RFC 7396 merge `patch` applied (`null` clears, objects merge).
pub(crate) fn patched_json<T: serde::Serialize>(
    current: &T,
    patch: &serde_json::Map<String, Value>,
) -> Value {
    let mut value = serde_json::to_value(current).unwrap_or(Value::Null);
    crate::campaign::settings::merge_patch(&mut value, &Value::Object(patch.clone()));
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skill_names_are_trimmed_lower_case_and_bounded() {
        assert_eq!(skill_name("s", "  Billing ").as_deref(), Ok("billing"));
        assert_eq!(skill_name("s", " ").map_err(|e| e.code), Err("required"));
        assert_eq!(skill_name("s", &"x".repeat(65)).map_err(|e| e.code), Err("too_long"));
    }

    #[test]
    fn language_tags_are_primary_subtags() {
        assert_eq!(language_tag("l", "CS").as_deref(), Ok("cs"));
        assert_eq!(language_tag("l", "fil").as_deref(), Ok("fil"));
        for bad in ["en-US", "e", "english", "e1"] {
            assert!(language_tag("l", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_pre_pass_names_every_bad_level_and_enum() {
        let mut problems = Vec::new();
        let json = serde_json::json!({"a": 0, "b": 3, "c": "high", "d": 6});
        check_levels("skills", Some(&json), &mut problems);
        check_enum("strategy", Some(&serde_json::json!("fastest")), &["fifo"], false, &mut problems);
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_ref()).collect();
        assert_eq!(fields, ["skills.a", "skills.c", "skills.d", "strategy"]);
    }
}
