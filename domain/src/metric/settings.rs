//! A custom metric's definition: which events it reads, which value it takes from them, how the
//! values aggregate, which events it keeps (filters) and what it groups by (dimensions); and
//! [`MetricDefinitionSettings::extract`], the pure step a projection runs per event.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::kpi::KpiName;
use crate::routing::fields::{self, check_enum, merge_problems, parse_checked};
use crate::routing_rule::{compare, Operator};
use crate::values::InvalidValue;

/// The seed's metric types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum MetricType {
    /// Call metrics (duration, wait).
    Call,
    /// Agent performance.
    Agent,
    /// Campaign effectiveness.
    Campaign,
    /// System performance.
    System,
    /// Quality assurance.
    Quality,
    /// Business KPIs (the default for custom metrics).
    #[default]
    Business,
}

impl MetricType {
    /// Every type.
    pub const ALL: [MetricType; 6] =
        [Self::Call, Self::Agent, Self::Campaign, Self::System, Self::Quality, Self::Business];

    /// The stable wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Call => "call",
            Self::Agent => "agent",
            Self::Campaign => "campaign",
            Self::System => "system",
            Self::Quality => "quality",
            Self::Business => "business",
        }
    }
}

/// How values aggregate (the seed's functions). `average` is kept as a sum and a count; the
/// median and percentiles from a mergeable sketch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Aggregation {
    /// Sum of the values.
    Sum,
    /// Sum ÷ count.
    Average,
    /// Smallest value.
    Min,
    /// Largest value.
    Max,
    /// Number of matching events (no value needed).
    #[default]
    Count,
    /// 50th percentile.
    Median,
    /// 95th percentile.
    #[serde(rename = "percentile_95")]
    Percentile95,
    /// 99th percentile.
    #[serde(rename = "percentile_99")]
    Percentile99,
}

impl Aggregation {
    /// Every function.
    pub const ALL: [Aggregation; 8] = [
        Self::Sum,
        Self::Average,
        Self::Min,
        Self::Max,
        Self::Count,
        Self::Median,
        Self::Percentile95,
        Self::Percentile99,
    ];

    /// The stable wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sum => "sum",
            Self::Average => "average",
            Self::Min => "min",
            Self::Max => "max",
            Self::Count => "count",
            Self::Median => "median",
            Self::Percentile95 => "percentile_95",
            Self::Percentile99 => "percentile_99",
        }
    }

    /// The quantile (0–1) for the percentile functions.
    pub fn quantile(self) -> Option<f64> {
        match self {
            Self::Median => Some(0.5),
            Self::Percentile95 => Some(0.95),
            Self::Percentile99 => Some(0.99),
            _ => None,
        }
    }
}

/// The metric names the system records itself (the seed's and the template UIs'), and the KPI
/// names: a custom metric may not take one.
pub const BUILT_IN_METRICS: [&str; 15] = [
    "call_duration",
    "queue_wait_time",
    "call_outcome",
    "agent_talk_time",
    "agent_idle_time",
    "agent_status_change",
    "campaign_calls",
    "campaign_conversion",
    "api_latency",
    "error_count",
    "calls_completed",
    "queue_depth",
    "avg_handle_time",
    "handoffs_requested",
    "agent_utilization",
];

/// Whether `name` is a built-in metric or a KPI.
pub fn is_reserved_name(name: &str) -> bool {
    BUILT_IN_METRICS.contains(&name) || KpiName::parse(name).is_some()
}

/// One filter: the event's `field` compared with `value` (all filters must hold; a missing
/// field fails its filter). The operators and their semantics are the routing rules'.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MetricFilter {
    /// A payload field path (`outcome`, `result.score`).
    pub field: String,
    /// The comparison.
    pub operator: Operator,
    /// What to compare with.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub value: Value,
}

/// A custom metric's definition. Unknown keys are refused.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct MetricDefinitionSettings {
    /// The metric's name: 1–100 of `a-z 0-9 _ . -`, starting with a letter; not a built-in
    /// metric or KPI name; fixed once created (aggregations are keyed by it).
    pub metric_name: String,
    /// Up to 2000 characters.
    pub description: Option<String>,
    /// The seed's metric type.
    pub metric_type: MetricType,
    /// Unit shown with values (`seconds`, `count`, `percentage`), up to 50 characters.
    pub unit: Option<String>,
    /// Event types it reads (`CallCompleted`), 1–20, distinct.
    pub source_events: Vec<String>,
    /// How values aggregate.
    pub aggregation: Aggregation,
    /// The payload field holding the value (a number, or a numeric string); required by every
    /// aggregation but `count`, which must not have one.
    pub value_field: Option<String>,
    /// Conditions an event must meet, at most 20.
    pub filters: Vec<MetricFilter>,
    /// Payload fields to group by (`campaign_id`, `agent_id`, `tags.region`), at most 5.
    pub dimensions: Vec<String>,
}

/// What one event contributes to a metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricInput {
    /// The value (1 for `count`).
    pub value: f64,
    /// Dimension → its value as text (absent dimensions are left out).
    pub dimensions: BTreeMap<String, String>,
}

fn is_field_path(path: &str) -> bool {
    (1..=200).contains(&path.len())
        && path.split('.').all(|part| {
            !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        })
}

fn is_event_type(name: &str) -> bool {
    (1..=100).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_uppercase())
        && name.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Checks a metric name (`metric_name`): 1–100 of `a-z 0-9 _ . -`, starting with a letter.
pub fn metric_name(field: &str, raw: &str) -> Result<String, InvalidValue> {
    let name = raw.trim();
    let ok = (1..=100).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b));
    if ok {
        Ok(name.to_owned())
    } else {
        Err(InvalidValue::new(
            field.to_owned(),
            "invalid_name",
            "1–100 of a-z, 0-9, _ . -, starting with a letter",
        ))
    }
}

/// The value at a dotted path (`result.score`) of a JSON object.
pub fn field_at<'a>(payload: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(payload, |v, key| v.get(key))
}

fn as_number(v: &Value) -> Option<f64> {
    let n = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }?;
    n.is_finite().then_some(n)
}

fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl MetricDefinitionSettings {
    /// Reads settings from JSON and checks every rule, reporting all problems at once.
    pub fn from_json(value: Value) -> Result<Self, Vec<InvalidValue>> {
        let mut pre = Vec::new();
        let types: Vec<&str> = MetricType::ALL.iter().map(|t| t.as_str()).collect();
        let functions: Vec<&str> = Aggregation::ALL.iter().map(|a| a.as_str()).collect();
        let operators: Vec<&str> = Operator::ALL.iter().map(|o| o.as_str()).collect();
        check_enum("metric_type", value.get("metric_type"), &types, false, &mut pre);
        check_enum("aggregation", value.get("aggregation"), &functions, false, &mut pre);
        if let Some(filters) = value.get("filters").and_then(Value::as_array) {
            for (i, f) in filters.iter().enumerate() {
                let op = Some(f.get("operator").unwrap_or(&Value::Null));
                check_enum(&format!("filters[{i}].operator"), op, &operators, false, &mut pre);
            }
        }
        let parsed: Self = parse_checked(value, pre)?;
        parsed.validated()
    }

    /// These settings with a JSON merge patch applied, checked as a whole.
    pub fn patched(&self, patch: &Map<String, Value>) -> Result<Self, Vec<InvalidValue>> {
        Self::from_json(fields::patched_json(self, patch))
    }

    /// Top-level fields whose value differs.
    pub fn changed_fields(&self, other: &Self) -> Vec<String> {
        fields::changed_fields(self, other)
    }

    /// Checks every rule and normalizes (trims names, drops empty texts).
    pub fn validated(mut self) -> Result<Self, Vec<InvalidValue>> {
        let mut problems = Vec::new();
        match metric_name("metric_name", &self.metric_name) {
            Ok(name) if is_reserved_name(&name) => problems.push(InvalidValue::new(
                "metric_name",
                "reserved",
                format!("'{name}' is a built-in metric or KPI"),
            )),
            Ok(name) => self.metric_name = name,
            Err(e) => problems.push(e),
        }
        fields::optional_text("description", &mut self.description, 2000, &mut problems);
        fields::optional_text("unit", &mut self.unit, 50, &mut problems);
        if self.source_events.is_empty() {
            problems.push(InvalidValue::new("source_events", "required", "at least one event type"));
        } else if self.source_events.len() > 20 {
            problems.push(InvalidValue::new("source_events", "too_many", "at most 20 event types"));
        }
        let mut seen = Vec::new();
        for (i, name) in self.source_events.iter_mut().enumerate() {
            *name = name.trim().to_owned();
            if !is_event_type(name) {
                problems.push(InvalidValue::new(
                    format!("source_events[{i}]"),
                    "invalid_event_type",
                    "an event type such as CallCompleted",
                ));
            } else if seen.contains(name) {
                problems.push(InvalidValue::new(format!("source_events[{i}]"), "duplicate", "listed twice"));
            } else {
                seen.push(name.clone());
            }
        }
        if let Some(path) = self.value_field.as_deref() {
            let path = path.trim().to_owned();
            self.value_field = (!path.is_empty()).then_some(path);
        }
        match (self.aggregation, self.value_field.as_deref()) {
            (Aggregation::Count, Some(_)) => problems.push(InvalidValue::new(
                "value_field",
                "not_allowed",
                "count counts events; filter them instead",
            )),
            (Aggregation::Count, None) => {}
            (_, None) => problems.push(InvalidValue::new(
                "value_field",
                "required",
                "the payload field holding the value",
            )),
            (_, Some(path)) if !is_field_path(path) => problems.push(InvalidValue::new(
                "value_field",
                "invalid_field",
                "a payload field path such as duration_seconds or result.score",
            )),
            _ => {}
        }
        if self.filters.len() > 20 {
            problems.push(InvalidValue::new("filters", "too_many", "at most 20 filters"));
        }
        for (i, f) in self.filters.iter_mut().enumerate() {
            f.field = f.field.trim().to_owned();
            if !is_field_path(&f.field) {
                problems.push(InvalidValue::new(
                    format!("filters[{i}].field"),
                    "invalid_field",
                    "a payload field path",
                ));
            }
            if let Some(problem) = filter_value_problem(f) {
                problems.push(InvalidValue::new(format!("filters[{i}].value"), problem.0, problem.1));
            }
        }
        if self.dimensions.len() > 5 {
            problems.push(InvalidValue::new("dimensions", "too_many", "at most 5 dimensions"));
        }
        let mut seen = Vec::new();
        for (i, d) in self.dimensions.iter_mut().enumerate() {
            *d = d.trim().to_owned();
            if !is_field_path(d) {
                problems.push(InvalidValue::new(
                    format!("dimensions[{i}]"),
                    "invalid_field",
                    "a payload field path",
                ));
            } else if seen.contains(d) {
                problems.push(InvalidValue::new(format!("dimensions[{i}]"), "duplicate", "listed twice"));
            } else {
                seen.push(d.clone());
            }
        }
        if problems.is_empty() {
            Ok(self)
        } else {
            Err(merge_problems(Vec::new(), problems))
        }
    }

    /// What an event contributes, or `None` when the metric does not read it: another event
    /// type, a filter that fails, or no numeric value at `value_field`. `payload` is the
    /// event's fields; the stored externally tagged form (`{"CallCompleted": {…}}`) is accepted
    /// too.
    pub fn extract(&self, event_type: &str, payload: &Value) -> Option<MetricInput> {
        if !self.source_events.iter().any(|e| e == event_type) {
            return None;
        }
        let payload = match payload.as_object() {
            Some(obj) if obj.len() == 1 && obj.contains_key(event_type) => &obj[event_type],
            _ => payload,
        };
        let filters_hold = self.filters.iter().all(|f| {
            field_at(payload, &f.field)
                .is_some_and(|actual| !actual.is_null() && compare(f.operator, actual, &f.value))
        });
        if !filters_hold {
            return None;
        }
        let value = match self.value_field.as_deref() {
            None => 1.0,
            Some(path) => as_number(field_at(payload, path)?)?,
        };
        let dimensions = self
            .dimensions
            .iter()
            .filter_map(|d| Some((d.clone(), as_text(field_at(payload, d)?)?)))
            .collect();
        Some(MetricInput { value, dimensions })
    }
}

fn filter_value_problem(f: &MetricFilter) -> Option<(&'static str, &'static str)> {
    let scalar = |v: &Value| matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_));
    match f.operator {
        Operator::InList | Operator::NotInList => {
            let ok = match &f.value {
                Value::Array(items) => !items.is_empty() && items.iter().all(scalar),
                Value::String(s) => !s.trim().is_empty(),
                _ => false,
            };
            (!ok).then_some(("invalid_list", "a non-empty list of values or a comma-separated string"))
        }
        Operator::MatchesRegex => match &f.value {
            Value::String(p) if p.len() <= crate::routing_rule::settings::MAX_REGEX_LEN => {
                crate::routing_rule::settings::compile_regex(p)
                    .is_err()
                    .then_some(("invalid_regex", "does not compile"))
            }
            _ => Some(("invalid_regex", "a regular expression of at most 1000 characters")),
        },
        _ => (!scalar(&f.value)).then_some(("invalid_value", "a string, number or boolean")),
    }
}
