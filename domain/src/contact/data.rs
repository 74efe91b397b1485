//! A contact's data and how raw input (an API body, a CSV row, a JSON object) becomes it.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::values::{time_zone, Email, InvalidValue, PhoneNumber};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ConsentStatus {
    Granted,
    Denied,
    #[default]
    Unknown,
}

/// Where the contact's time zone came from: given, derived from the number's range, or the
/// UTC fallback when the range spans zones (the calling window is then checked in every zone
/// the range covers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeZoneSource {
    Given,
    #[default]
    Number,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContactData {
    pub phone_number: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub company: Option<String>,
    pub language: Option<String>,
    pub timezone: Option<String>,
    /// The zones the calling window is checked in: the given zone, or every zone of the
    /// number's range.
    pub timezones: Vec<String>,
    pub timezone_source: TimeZoneSource,
    pub custom_fields: Map<String, Value>,
    pub tags: Vec<String>,
    pub lists: Vec<String>,
    pub max_attempts: u32,
    pub do_not_call: bool,
    pub consent: ConsentStatus,
}

/// Raw contact input; every field optional so that all problems are reported together.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct ContactInput {
    pub phone_number: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub company: Option<String>,
    pub language: Option<String>,
    pub timezone: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub custom_fields: Map<String, Value>,
    pub tags: Vec<String>,
    pub lists: Vec<String>,
    pub max_attempts: Option<u32>,
    pub do_not_call: Option<bool>,
    pub consent: Option<ConsentStatus>,
}

fn text(field: &'static str, raw: Option<&str>, max: usize, out: &mut Vec<InvalidValue>) -> Option<String> {
    let v = raw.map(str::trim).filter(|v| !v.is_empty())?;
    if v.chars().count() > max {
        out.push(InvalidValue::new(field, "too_long", format!("at most {max} characters")));
        return None;
    }
    if v.chars().any(char::is_control) {
        out.push(InvalidValue::new(field, "invalid_characters", "must not contain control characters"));
        return None;
    }
    Some(v.to_owned())
}

fn labels(field: &'static str, raw: &[String], out: &mut Vec<InvalidValue>) -> Vec<String> {
    let mut labels: Vec<String> = Vec::new();
    for l in raw {
        let l = l.trim().to_lowercase();
        if l.is_empty() {
            continue;
        }
        if l.chars().count() > 64 || l.chars().any(char::is_control) {
            out.push(InvalidValue::new(field, "invalid_label", "labels are 1–64 printable characters"));
            continue;
        }
        if !labels.contains(&l) {
            labels.push(l);
        }
    }
    if labels.len() > 50 {
        out.push(InvalidValue::new(field, "too_many", "at most 50"));
    }
    labels
}

impl ContactInput {
    /// Checks the input and derives the time zone from the number when none is given.
    pub fn parse(self, default_region: Option<&str>) -> Result<ContactData, Vec<InvalidValue>> {
        let mut problems = Vec::new();
        let phone = match self.phone_number.as_deref() {
            None => {
                problems.push(InvalidValue::new("phone_number", "required", "a phone number is required"));
                None
            }
            Some(raw) => PhoneNumber::parse(raw, default_region).map_err(|e| problems.push(e)).ok(),
        };
        let email = match self.email.as_deref().map(str::trim).filter(|e| !e.is_empty()) {
            Some(raw) => Email::parse(raw).map(|e| e.as_str().to_owned()).map_err(|e| problems.push(e)).ok(),
            None => None,
        };
        let timezone = match self.timezone.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            Some(raw) => time_zone("timezone", raw).map_err(|e| problems.push(e)).ok(),
            None => None,
        };
        let first_name = text("first_name", self.first_name.as_deref(), 100, &mut problems);
        let last_name = text("last_name", self.last_name.as_deref(), 100, &mut problems);
        let company = text("company", self.company.as_deref(), 200, &mut problems);
        let language = text("language", self.language.as_deref(), 35, &mut problems);
        let tags = labels("tags", &self.tags, &mut problems);
        let lists = labels("lists", &self.lists, &mut problems);
        if self.custom_fields.len() > 100 {
            problems.push(InvalidValue::new("custom_fields", "too_many", "at most 100 fields"));
        }
        if self.custom_fields.keys().any(|k| k.is_empty() || k.len() > 64) {
            problems.push(InvalidValue::new(
                "custom_fields",
                "invalid_key",
                "field names are 1–64 characters",
            ));
        }
        // PostgreSQL keeps no U+0000 in jsonb: a value holding one is refused here, whether it
        // came in a JSON body or a CSV cell.
        for (key, value) in &self.custom_fields {
            if key.contains('\0') || holds_nul(value) {
                problems.push(InvalidValue::new(
                    format!("custom_fields.{}", key.replace('\0', "")),
                    "invalid_characters",
                    "must not contain control characters",
                ));
            }
        }
        let max_attempts = self.max_attempts.unwrap_or(3);
        if !(1..=20).contains(&max_attempts) {
            problems.push(InvalidValue::new("max_attempts", "out_of_range", "between 1 and 20"));
        }
        let (Some(phone), true) = (phone, problems.is_empty()) else {
            return Err(problems);
        };
        let (timezones, timezone_source) = match &timezone {
            Some(tz) => (vec![tz.clone()], TimeZoneSource::Given),
            None => (phone.time_zones(), TimeZoneSource::Number),
        };
        let timezone = timezone.or_else(|| (timezones.len() == 1).then(|| timezones[0].clone()));
        Ok(ContactData {
            phone_number: phone.as_str().to_owned(),
            first_name,
            last_name,
            email,
            company,
            language,
            timezone,
            timezones: if timezones.is_empty() { vec!["UTC".to_owned()] } else { timezones },
            timezone_source,
            custom_fields: self.custom_fields,
            tags,
            lists,
            max_attempts,
            do_not_call: self.do_not_call.unwrap_or(false),
            consent: self.consent.unwrap_or_default(),
        })
    }
}

impl ContactData {
    /// The input that gives this data back (the base a patch is merged onto).
    pub fn to_input(&self) -> ContactInput {
        ContactInput {
            phone_number: Some(self.phone_number.clone()),
            first_name: self.first_name.clone(),
            last_name: self.last_name.clone(),
            email: self.email.clone(),
            company: self.company.clone(),
            language: self.language.clone(),
            timezone: (self.timezone_source == TimeZoneSource::Given)
                .then(|| self.timezone.clone())
                .flatten(),
            custom_fields: self.custom_fields.clone(),
            tags: self.tags.clone(),
            lists: self.lists.clone(),
            max_attempts: Some(self.max_attempts),
            do_not_call: Some(self.do_not_call),
            consent: Some(self.consent),
        }
    }

    /// Applies a JSON merge patch over this contact's input form and checks the result.
    pub fn patched(&self, patch: &Map<String, Value>) -> Result<ContactData, Vec<InvalidValue>> {
        let mut current = serde_json::to_value(self.to_input()).unwrap_or(Value::Null);
        crate::campaign::settings::merge_patch(&mut current, &Value::Object(patch.clone()));
        let input: ContactInput = serde_path_to_error::deserialize(current).map_err(|e| {
            let path = e.path().to_string();
            vec![InvalidValue::new(path, "invalid", e.into_inner().to_string())]
        })?;
        input.parse(None)
    }
}

/// Whether a JSON value holds U+0000 in any string or key.
pub fn holds_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(holds_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)),
        _ => false,
    }
}
