//! A routing rule's settings: when it applies (conditions, hours), which strategy it uses and
//! where it sends the call (and where else when it cannot).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::routing::fields::{self, check_enum, merge_problems, parse_checked};
use crate::routing::{Strategy, StrategyConfig};
use crate::schedule::BusinessHours;
use crate::values::{clean_text, InvalidValue, PhoneNumber};

/// Condition operators (the seed's 10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Operator {
    /// Equal (numbers as numbers, text case-insensitively).
    Equals,
    /// Not equal.
    NotEquals,
    /// Text contains the value; a list contains an equal element.
    Contains,
    /// Text starts with the value.
    StartsWith,
    /// Text ends with the value.
    EndsWith,
    /// Greater (numbers as numbers, else text order).
    GreaterThan,
    /// Less.
    LessThan,
    /// Equal to one of a list (a JSON array or a comma-separated string).
    InList,
    /// Equal to none of a list.
    NotInList,
    /// The text matches a regular expression (Rust `regex` syntax).
    MatchesRegex,
}

impl Operator {
    /// Every operator.
    pub const ALL: [Operator; 10] = [
        Self::Equals,
        Self::NotEquals,
        Self::Contains,
        Self::StartsWith,
        Self::EndsWith,
        Self::GreaterThan,
        Self::LessThan,
        Self::InList,
        Self::NotInList,
        Self::MatchesRegex,
    ];

    /// The stable wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Equals => "equals",
            Self::NotEquals => "not_equals",
            Self::Contains => "contains",
            Self::StartsWith => "starts_with",
            Self::EndsWith => "ends_with",
            Self::GreaterThan => "greater_than",
            Self::LessThan => "less_than",
            Self::InList => "in_list",
            Self::NotInList => "not_in_list",
            Self::MatchesRegex => "matches_regex",
        }
    }
}

/// How a condition joins the result of the conditions before it (left to right).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Logic {
    /// Both.
    #[default]
    And,
    /// Either.
    Or,
}

/// One condition: `{field, operator, value, logic}`. The first condition's `logic` is unused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// A route-context field (`caller_number`, `language`, `vip`, `hour`, a custom attribute).
    pub field: String,
    /// The comparison.
    pub operator: Operator,
    /// What to compare with.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub value: Value,
    /// How it joins the conditions before it.
    #[serde(default)]
    pub logic: Logic,
}

/// Where a rule sends a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TargetType {
    /// One agent (id: agent uuid).
    Agent,
    /// A team's agents (id: team uuid).
    Team,
    /// A queue (id: queue uuid).
    #[default]
    Queue,
    /// Voicemail (id: optional mailbox uuid).
    Voicemail,
    /// An outside number (id: E.164).
    External,
    /// An IVR flow (id: flow uuid).
    Ivr,
}

impl TargetType {
    /// Every target type.
    pub const ALL: [TargetType; 6] =
        [Self::Agent, Self::Team, Self::Queue, Self::Voicemail, Self::External, Self::Ivr];

    /// The stable wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Agent => "agent",
            Self::Team => "team",
            Self::Queue => "queue",
            Self::Voicemail => "voicemail",
            Self::External => "external",
            Self::Ivr => "ivr",
        }
    }
}

/// A target: type, id and a name to show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RuleTarget {
    /// What kind.
    pub target_type: TargetType,
    /// Its id (uuid string, or E.164 for external).
    pub target_id: Option<String>,
    /// Shown to people.
    pub target_name: Option<String>,
}

/// A routing rule's settings (the seed's rule). Unknown keys are refused.
///
/// Rules are evaluated by `priority`, **higher value first** (the default is 100), then by
/// rule id. `active_hours` has the shape of business hours (zone, weekly ranges, holidays).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct RuleSettings {
    /// 1–200 characters.
    pub name: String,
    /// Up to 2000 characters.
    pub description: Option<String>,
    /// How the target's agents are picked.
    pub strategy: Strategy,
    /// Higher is evaluated first (default 100).
    pub priority: i32,
    /// All must hold, combined left to right by each one's `logic`; none: always.
    pub conditions: Vec<Condition>,
    /// Applies only while `business_hours` are open.
    pub business_hours_only: bool,
    /// Required when `business_hours_only`.
    pub business_hours: Option<BusinessHours>,
    /// Applies only while these hours are open.
    pub active_hours: Option<BusinessHours>,
    /// Where the call goes.
    pub target_type: TargetType,
    /// The target's id.
    pub target_id: Option<String>,
    /// Shown to people.
    pub target_name: Option<String>,
    /// Whether the fallback target is used outside the hours (and offered to the router when
    /// the primary target cannot take the call).
    pub fallback_enabled: bool,
    /// The fallback's type (required when `fallback_enabled`).
    pub fallback_target_type: Option<TargetType>,
    /// The fallback's id.
    pub fallback_target_id: Option<String>,
    /// The fallback's name.
    pub fallback_target_name: Option<String>,
    /// Strategy settings.
    pub strategy_config: StrategyConfig,
    /// Disabled rules are skipped.
    pub enabled: bool,
}

impl Default for RuleSettings {
    fn default() -> Self {
        Self {
            name: String::new(),
            description: None,
            strategy: Strategy::default(),
            priority: 100,
            conditions: Vec::new(),
            business_hours_only: false,
            business_hours: None,
            active_hours: None,
            target_type: TargetType::default(),
            target_id: None,
            target_name: None,
            fallback_enabled: false,
            fallback_target_type: None,
            fallback_target_id: None,
            fallback_target_name: None,
            strategy_config: StrategyConfig::default(),
            enabled: true,
        }
    }
}

/// Longest regular expression accepted.
pub const MAX_REGEX_LEN: usize = 1000;

/// Compiles a condition's regular expression with a size limit (a rule cannot exhaust memory).
pub fn compile_regex(pattern: &str) -> Result<regex::Regex, regex::Error> {
    regex::RegexBuilder::new(pattern).size_limit(1 << 20).dfa_size_limit(1 << 20).build()
}

fn is_scalar(v: &Value) -> bool {
    matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_))
}

fn check_target(
    prefix: &str,
    target_type: TargetType,
    id: &mut Option<String>,
    problems: &mut Vec<InvalidValue>,
) {
    let field = format!("{prefix}target_id");
    if let Some(raw) = id.as_deref() {
        if raw.trim().is_empty() {
            *id = None;
        }
    }
    match (target_type, id.as_deref()) {
        (TargetType::Voicemail, None) => {}
        (TargetType::External, Some(raw)) => match PhoneNumber::parse(raw, None) {
            Ok(n) => *id = Some(n.as_str().to_owned()),
            Err(e) => problems.push(InvalidValue::new(field, e.code, e.message)),
        },
        (_, Some(raw)) => match Uuid::parse_str(raw.trim()) {
            Ok(u) if !u.is_nil() => *id = Some(u.to_string()),
            _ => problems.push(InvalidValue::new(field, "invalid_id", "the target's id (a uuid)")),
        },
        (TargetType::External, None) => {
            problems.push(InvalidValue::new(field, "required", "the number to send calls to (E.164)"))
        }
        (_, None) => problems.push(InvalidValue::new(field, "required", "the target's id")),
    }
}

impl RuleSettings {
    /// Reads settings from JSON and checks every rule, reporting all problems at once
    /// (unknown strategies, operators, logic and target types included). An empty
    /// `active_hours` object (the seed's `{}`) means none.
    pub fn from_json(mut value: Value) -> Result<Self, Vec<InvalidValue>> {
        if let Some(obj) = value.as_object_mut() {
            for key in ["active_hours", "business_hours"] {
                if obj.get(key).and_then(Value::as_object).is_some_and(Map::is_empty) {
                    obj.insert(key.to_owned(), Value::Null);
                }
            }
        }
        let mut pre = Vec::new();
        let strategies: Vec<&str> = Strategy::ALL.iter().map(|s| s.as_str()).collect();
        let targets: Vec<&str> = TargetType::ALL.iter().map(|t| t.as_str()).collect();
        let operators: Vec<&str> = Operator::ALL.iter().map(|o| o.as_str()).collect();
        check_enum("strategy", value.get("strategy"), &strategies, false, &mut pre);
        check_enum("target_type", value.get("target_type"), &targets, false, &mut pre);
        check_enum("fallback_target_type", value.get("fallback_target_type"), &targets, true, &mut pre);
        if let Some(conditions) = value.get("conditions").and_then(Value::as_array) {
            for (i, c) in conditions.iter().enumerate() {
                let op = Some(c.get("operator").unwrap_or(&Value::Null));
                check_enum(&format!("conditions[{i}].operator"), op, &operators, false, &mut pre);
                check_enum(&format!("conditions[{i}].logic"), c.get("logic"), &["and", "or"], true, &mut pre);
            }
        }
        StrategyConfig::precheck("strategy_config", value.get("strategy_config"), &mut pre);
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

    /// Checks every rule and normalizes.
    pub fn validated(mut self) -> Result<Self, Vec<InvalidValue>> {
        let mut problems = Vec::new();
        match clean_text("name", &self.name, 200) {
            Ok(name) => self.name = name,
            Err(e) => problems.push(e),
        }
        fields::optional_text("description", &mut self.description, 2000, &mut problems);
        fields::optional_text("target_name", &mut self.target_name, 200, &mut problems);
        fields::optional_text("fallback_target_name", &mut self.fallback_target_name, 200, &mut problems);
        if self.conditions.len() > 50 {
            problems.push(InvalidValue::new("conditions", "too_many", "at most 50 conditions"));
        }
        for (i, c) in self.conditions.iter_mut().enumerate() {
            let at = |name: &str| format!("conditions[{i}].{name}");
            c.field = c.field.trim().to_owned();
            let field_ok = (1..=100).contains(&c.field.len())
                && c.field.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
            if !field_ok {
                problems.push(InvalidValue::new(
                    at("field"),
                    "invalid_field",
                    "1–100 letters, digits or _ . -",
                ));
            }
            match c.operator {
                Operator::InList | Operator::NotInList => {
                    let ok = match &c.value {
                        Value::Array(items) => !items.is_empty() && items.iter().all(is_scalar),
                        Value::String(s) => !s.trim().is_empty(),
                        _ => false,
                    };
                    if !ok {
                        problems.push(InvalidValue::new(
                            at("value"),
                            "invalid_list",
                            "a non-empty list of values or a comma-separated string",
                        ));
                    }
                }
                Operator::MatchesRegex => match &c.value {
                    Value::String(p) if p.len() > MAX_REGEX_LEN => problems.push(InvalidValue::new(
                        at("value"),
                        "too_long",
                        format!("at most {MAX_REGEX_LEN} characters"),
                    )),
                    Value::String(p) => {
                        if let Err(e) = compile_regex(p) {
                            problems.push(InvalidValue::new(at("value"), "invalid_regex", e.to_string()));
                        }
                    }
                    _ => {
                        problems.push(InvalidValue::new(at("value"), "invalid_regex", "a regular expression"))
                    }
                },
                _ => {
                    if !is_scalar(&c.value) {
                        problems.push(InvalidValue::new(
                            at("value"),
                            "invalid_value",
                            "a string, number or boolean",
                        ));
                    }
                }
            }
        }
        if self.business_hours_only && self.business_hours.is_none() {
            problems.push(InvalidValue::new(
                "business_hours",
                "required",
                "business_hours_only needs the business hours",
            ));
        }
        if let Some(hours) = &self.business_hours {
            if let Err(p) = hours.validate("business_hours") {
                problems.extend(p);
            }
        }
        if let Some(hours) = &self.active_hours {
            if let Err(p) = hours.validate("active_hours") {
                problems.extend(p);
            }
        }
        check_target("", self.target_type, &mut self.target_id, &mut problems);
        match self.fallback_target_type {
            Some(t) => check_target("fallback_", t, &mut self.fallback_target_id, &mut problems),
            None if self.fallback_enabled => problems.push(InvalidValue::new(
                "fallback_target_type",
                "required",
                "fallback_enabled needs a fallback target",
            )),
            None => {}
        }
        self.strategy_config = self.strategy_config.validated("strategy_config", &mut problems);
        if problems.is_empty() {
            Ok(self)
        } else {
            Err(merge_problems(Vec::new(), problems))
        }
    }

    /// The primary target.
    pub fn target(&self) -> RuleTarget {
        RuleTarget {
            target_type: self.target_type,
            target_id: self.target_id.clone(),
            target_name: self.target_name.clone(),
        }
    }

    /// The fallback target, when enabled.
    pub fn fallback(&self) -> Option<RuleTarget> {
        let t = self.fallback_target_type.filter(|_| self.fallback_enabled)?;
        Some(RuleTarget {
            target_type: t,
            target_id: self.fallback_target_id.clone(),
            target_name: self.fallback_target_name.clone(),
        })
    }
}
