//! From a file's rows to contact input: column mapping, typed columns, per-row problems.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::contact::{ConsentStatus, ContactInput};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportFormat {
    Csv,
    /// A JSON array of contact objects (or `{"contacts": [...]}`), read element by element.
    Json,
    /// One contact object per line.
    Ndjson,
}

impl ImportFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Json => "json",
            Self::Ndjson => "ndjson",
        }
    }
}

/// The contact fields a column can fill. Any other column goes to `custom_fields`.
pub const CONTACT_COLUMNS: &[&str] = &[
    "phone_number",
    "first_name",
    "last_name",
    "email",
    "company",
    "language",
    "timezone",
    "tags",
    "lists",
    "max_attempts",
    "do_not_call",
    "consent",
];

/// A source column name → a contact field (`phone_number`), `custom:<name>`, or `ignore`.
/// Columns not in the mapping are matched by name (and a few common spellings).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ColumnMapping(pub BTreeMap<String, String>);

/// A problem with one row (or, with `row` 0, the file). `field` names the column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowProblem {
    pub row: u64,
    pub field: Option<String>,
    pub code: String,
    pub message: String,
}

impl RowProblem {
    pub fn new(row: u64, field: Option<&str>, code: &str, message: impl Into<String>) -> Self {
        Self { row, field: field.map(str::to_owned), code: code.to_owned(), message: message.into() }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Field(&'static str),
    Custom(String),
    Ignore,
}

fn normalise(header: &str) -> String {
    header.trim().trim_start_matches('\u{feff}').to_lowercase().replace([' ', '-'], "_")
}

fn alias(name: &str) -> Option<&'static str> {
    Some(match name {
        "phone" | "phonenumber" | "phone_no" | "mobile" | "telephone" | "tel" | "number" => "phone_number",
        "firstname" | "first" | "given_name" => "first_name",
        "lastname" | "last" | "surname" | "family_name" => "last_name",
        "e_mail" | "mail" => "email",
        "organization" | "organisation" | "company_name" => "company",
        "time_zone" | "tz" => "timezone",
        "dnc" => "do_not_call",
        other => return CONTACT_COLUMNS.iter().copied().find(|c| *c == other),
    })
}

/// How a CSV file's columns map to contact input, decided once from its header row.
#[derive(Debug, Clone)]
pub struct CsvLayout {
    targets: Vec<Target>,
    headers: Vec<String>,
}

impl CsvLayout {
    /// Fails when no column gives the phone number, a column is named twice, or the mapping
    /// names a column the file does not have or a field that does not exist.
    pub fn new(headers: &[String], mapping: &ColumnMapping) -> Result<Self, RowProblem> {
        let normalised: Vec<String> = headers.iter().map(|h| normalise(h)).collect();
        for (source, target) in &mapping.0 {
            if !normalised.contains(&normalise(source)) {
                return Err(RowProblem::new(
                    1,
                    Some(source),
                    "unknown_column",
                    format!("the mapping names column '{source}', which the header row does not have"),
                ));
            }
            if target != "ignore"
                && !target.starts_with("custom:")
                && !CONTACT_COLUMNS.contains(&target.as_str())
            {
                return Err(RowProblem::new(
                    1,
                    Some(source),
                    "unknown_field",
                    format!(
                        "'{target}' is not a contact field (use one of {}, custom:<name> or ignore)",
                        CONTACT_COLUMNS.join(", ")
                    ),
                ));
            }
        }
        let mapped: BTreeMap<String, &String> = mapping.0.iter().map(|(k, v)| (normalise(k), v)).collect();
        let mut targets = Vec::with_capacity(headers.len());
        for (i, name) in normalised.iter().enumerate() {
            let target = match mapped.get(name) {
                Some(t) if t.as_str() == "ignore" => Target::Ignore,
                Some(t) => match t.strip_prefix("custom:") {
                    Some(custom) => Target::Custom(custom.to_owned()),
                    None => CONTACT_COLUMNS
                        .iter()
                        .find(|c| **c == t.as_str())
                        .map_or(Target::Ignore, |c| Target::Field(c)),
                },
                None if name.is_empty() => Target::Ignore,
                None => {
                    alias(name).map_or_else(|| Target::Custom(headers[i].trim().to_owned()), Target::Field)
                }
            };
            if let Target::Field(f) = target {
                if targets.contains(&target) {
                    return Err(RowProblem::new(
                        1,
                        Some(f),
                        "duplicate_column",
                        format!("two columns give {f}"),
                    ));
                }
            }
            targets.push(target);
        }
        if !targets.contains(&Target::Field("phone_number")) {
            return Err(RowProblem::new(
                1,
                Some("phone_number"),
                "missing_column",
                "no column gives the phone number (name one phone_number, or map it)",
            ));
        }
        Ok(Self { targets, headers: headers.to_vec() })
    }

    pub fn width(&self) -> usize {
        self.headers.len()
    }

    /// One data row (`row` is the file's line-based row number, the header being row 1).
    pub fn input<'a>(
        &self,
        row: u64,
        fields: impl Iterator<Item = &'a str>,
    ) -> Result<ContactInput, Vec<RowProblem>> {
        let mut object = Map::new();
        let mut custom = Map::new();
        for (target, value) in self.targets.iter().zip(fields) {
            let value = value.trim();
            match target {
                Target::Ignore => {}
                Target::Custom(name) => {
                    if !value.is_empty() {
                        custom.insert(name.clone(), Value::String(value.to_owned()));
                    }
                }
                Target::Field(f) => {
                    if !value.is_empty() {
                        object.insert((*f).to_owned(), Value::String(value.to_owned()));
                    }
                }
            }
        }
        typed_input(row, object, custom)
    }
}

/// A JSON object row: contact fields by name, anything else into `custom_fields`.
pub fn json_input(row: u64, value: Value) -> Result<ContactInput, Vec<RowProblem>> {
    let Value::Object(map) = value else {
        return Err(vec![RowProblem::new(row, None, "not_an_object", "each contact must be a JSON object")]);
    };
    let mut object = Map::new();
    let mut custom = Map::new();
    for (key, value) in map {
        match alias(&normalise(&key)) {
            Some(field) => {
                object.insert(field.to_owned(), value);
            }
            None if key == "custom_fields" => match value {
                Value::Object(fields) => custom.extend(fields),
                Value::Null => {}
                _ => {
                    return Err(vec![RowProblem::new(
                        row,
                        Some("custom_fields"),
                        "invalid",
                        "must be an object",
                    )])
                }
            },
            None => {
                custom.insert(key, value);
            }
        }
    }
    typed_input(row, object, custom)
}

/// Turns text or JSON values into typed contact input (numbers, flags, lists from text).
fn typed_input(
    row: u64,
    mut object: Map<String, Value>,
    custom: Map<String, Value>,
) -> Result<ContactInput, Vec<RowProblem>> {
    let mut problems = Vec::new();
    for list in ["tags", "lists"] {
        if let Some(Value::String(s)) = object.get(list) {
            let items = s.split([';', ',', '|']).map(|t| Value::String(t.trim().to_owned())).collect();
            object.insert(list.to_owned(), Value::Array(items));
        }
    }
    if let Some(Value::String(s)) = object.get("max_attempts") {
        match s.parse::<u32>() {
            Ok(n) => {
                object.insert("max_attempts".into(), Value::from(n));
            }
            Err(_) => problems.push(RowProblem::new(
                row,
                Some("max_attempts"),
                "invalid_number",
                format!("'{s}' is not a whole number"),
            )),
        }
    }
    if let Some(Value::String(s)) = object.get("do_not_call") {
        let flag = match s.to_lowercase().as_str() {
            "true" | "yes" | "y" | "1" => Some(true),
            "false" | "no" | "n" | "0" | "" => Some(false),
            _ => None,
        };
        match flag {
            Some(f) => {
                object.insert("do_not_call".into(), Value::Bool(f));
            }
            None => problems.push(RowProblem::new(
                row,
                Some("do_not_call"),
                "invalid_flag",
                format!("'{s}' is not yes/no"),
            )),
        }
    }
    if let Some(Value::String(s)) = object.get("consent") {
        let consent = match s.to_lowercase().as_str() {
            "granted" | "yes" | "true" | "1" | "opt_in" | "opted_in" => ConsentStatus::Granted,
            "denied" | "no" | "false" | "0" | "opt_out" | "opted_out" => ConsentStatus::Denied,
            _ => ConsentStatus::Unknown,
        };
        object.insert("consent".into(), serde_json::to_value(consent).unwrap_or(Value::Null));
    }
    for key in ["phone_number", "first_name", "last_name", "email", "company", "language", "timezone"] {
        if let Some(v @ (Value::Number(_) | Value::Bool(_))) = object.get(key) {
            let text = v.to_string();
            object.insert(key.to_owned(), Value::String(text));
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    object.insert("custom_fields".into(), Value::Object(custom));
    serde_path_to_error::deserialize::<_, ContactInput>(Value::Object(object)).map_err(|e| {
        let field = e.path().to_string();
        vec![RowProblem::new(row, Some(&field), "invalid", e.into_inner().to_string())]
    })
}
