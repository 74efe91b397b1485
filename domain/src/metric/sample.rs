//! A metric value as the seed posts it (`POST /api/analytics/metrics` and its batch route):
//! `{metric_type, metric_name, value, unit, team_id, agent_id, campaign_id, call_id, tags,
//! dimensions, metadata, timestamp}`. Unknown metric names are allowed (custom metrics); the
//! type must be one of the seed's, the value finite, the time not too far ahead.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::settings::{metric_name, MetricType};
use crate::routing::fields::{self, check_enum, parse_checked};
use crate::values::InvalidValue;

/// The most values one batch request may carry.
pub const MAX_BATCH: usize = 1_000;

/// The most entries in `tags`, `dimensions` or `metadata`.
pub const MAX_ENTRIES: usize = 50;

/// The largest `metadata`, serialized (bytes).
pub const MAX_METADATA_BYTES: usize = 16 * 1024;

/// One metric value. Unknown keys are refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MetricSample {
    /// The seed's type.
    pub metric_type: MetricType,
    /// Any metric name (1–100 of `a-z 0-9 _ . -`, starting with a letter).
    pub metric_name: String,
    /// A finite number.
    pub value: f64,
    /// Unit (up to 50 characters).
    #[serde(default)]
    pub unit: Option<String>,
    /// The team it is about.
    #[serde(default)]
    pub team_id: Option<Uuid>,
    /// The agent it is about.
    #[serde(default)]
    pub agent_id: Option<Uuid>,
    /// The campaign it is about.
    #[serde(default)]
    pub campaign_id: Option<Uuid>,
    /// The call it is about.
    #[serde(default)]
    pub call_id: Option<Uuid>,
    /// Tags to filter by: text, number or boolean values.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub tags: Map<String, Value>,
    /// Dimensions to group by: text, number or boolean values.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub dimensions: Map<String, Value>,
    /// Anything else (at most 16 KiB).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub metadata: Map<String, Value>,
    /// When it was measured (default: when received).
    #[serde(default)]
    pub timestamp: Option<DateTime<Utc>>,
}

fn check_map(field: &str, map: &Map<String, Value>, scalar_only: bool, problems: &mut Vec<InvalidValue>) {
    if map.len() > MAX_ENTRIES {
        problems.push(InvalidValue::new(
            field.to_owned(),
            "too_many",
            format!("at most {MAX_ENTRIES} entries"),
        ));
    }
    for (key, value) in map {
        if key.trim().is_empty() || key.chars().count() > 100 || key.chars().any(char::is_control) {
            problems.push(InvalidValue::new(
                format!("{field}.{key}"),
                "invalid_key",
                "1–100 printable characters",
            ));
        }
        let scalar = matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_));
        if scalar_only && !scalar {
            problems.push(InvalidValue::new(
                format!("{field}.{key}"),
                "invalid_value",
                "a string, number or boolean",
            ));
        }
    }
}

impl MetricSample {
    /// Reads one value from JSON received at `now`; a `timestamp` later than `now +
    /// max_future` is refused, and a missing one becomes `now`. Every problem is reported.
    pub fn from_json(
        mut value: Value,
        now: DateTime<Utc>,
        max_future: Duration,
    ) -> Result<Self, Vec<InvalidValue>> {
        let mut pre = Vec::new();
        let types: Vec<&str> = MetricType::ALL.iter().map(|t| t.as_str()).collect();
        if let Some(obj) = value.as_object_mut() {
            // A missing or unknown required value is reported by name, and a stand-in lets the
            // rest of the body be checked too.
            if obj.get("metric_type").is_some_and(|v| !v.is_null()) {
                check_enum("metric_type", obj.get("metric_type"), &types, false, &mut pre);
                if !pre.is_empty() {
                    obj.insert("metric_type".to_owned(), json!("business"));
                }
            }
            for (key, stand_in) in
                [("metric_type", json!("business")), ("metric_name", json!("x")), ("value", json!(0))]
            {
                if obj.get(key).is_none_or(Value::is_null) {
                    pre.push(InvalidValue::new(key, "required", "must be given"));
                    obj.insert(key.to_owned(), stand_in);
                }
            }
        }
        let named = |more: Vec<InvalidValue>, pre: &[InvalidValue]| {
            let mut all = pre.to_vec();
            all.extend(more.into_iter().filter(|p| !pre.iter().any(|q| q.field == p.field)));
            all
        };
        match parse_checked::<Self>(value, Vec::new()) {
            Err(more) => Err(named(more, &pre)),
            Ok(parsed) => match parsed.validated(now, max_future) {
                Ok(sample) if pre.is_empty() => Ok(sample),
                Ok(_) => Err(pre),
                Err(more) => Err(named(more, &pre)),
            },
        }
    }

    /// Reads a batch (a JSON array, 1–1000 values); problems are named `[i].field`.
    pub fn batch_from_json(
        value: Value,
        now: DateTime<Utc>,
        max_future: Duration,
    ) -> Result<Vec<Self>, Vec<InvalidValue>> {
        let Value::Array(items) = value else {
            return Err(vec![InvalidValue::new("body", "invalid", "a JSON array of metric values")]);
        };
        if items.is_empty() || items.len() > MAX_BATCH {
            return Err(vec![InvalidValue::new("body", "out_of_range", format!("1 to {MAX_BATCH} values"))]);
        }
        let mut out = Vec::with_capacity(items.len());
        let mut problems = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            match Self::from_json(item, now, max_future) {
                Ok(sample) => out.push(sample),
                Err(p) => problems.extend(
                    p.into_iter().map(|e| InvalidValue { field: format!("[{i}].{}", e.field).into(), ..e }),
                ),
            }
        }
        if problems.is_empty() {
            Ok(out)
        } else {
            Err(problems)
        }
    }

    /// Checks every rule and normalizes (name trimmed, timestamp filled in).
    pub fn validated(mut self, now: DateTime<Utc>, max_future: Duration) -> Result<Self, Vec<InvalidValue>> {
        let mut problems = Vec::new();
        match metric_name("metric_name", &self.metric_name) {
            Ok(name) => self.metric_name = name,
            Err(e) => problems.push(e),
        }
        if !self.value.is_finite() {
            problems.push(InvalidValue::new("value", "not_finite", "must be a finite number"));
        }
        fields::optional_text("unit", &mut self.unit, 50, &mut problems);
        for (field, id) in [
            ("team_id", self.team_id),
            ("agent_id", self.agent_id),
            ("campaign_id", self.campaign_id),
            ("call_id", self.call_id),
        ] {
            if id.is_some_and(|u| u.is_nil()) {
                problems.push(InvalidValue::new(field, "invalid_id", "not the nil uuid"));
            }
        }
        check_map("tags", &self.tags, true, &mut problems);
        check_map("dimensions", &self.dimensions, true, &mut problems);
        check_map("metadata", &self.metadata, false, &mut problems);
        if serde_json::to_vec(&self.metadata).map_or(0, |v| v.len()) > MAX_METADATA_BYTES {
            problems.push(InvalidValue::new("metadata", "too_large", "at most 16 KiB"));
        }
        match self.timestamp {
            Some(t) if t > now + max_future => problems.push(InvalidValue::new(
                "timestamp",
                "in_the_future",
                format!("at most {} s ahead of the server's clock", max_future.num_seconds()),
            )),
            Some(_) => {}
            None => self.timestamp = Some(now),
        }
        if problems.is_empty() {
            Ok(self)
        } else {
            Err(problems)
        }
    }
}
