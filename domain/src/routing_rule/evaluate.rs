//! Which rule routes a call: a pure evaluator over rule versions and a route context.
//!
//! Rules are tried by priority (higher first), then rule id; disabled rules are skipped. A rule
//! applies when its conditions hold (left to right: each condition joins the result so far by
//! its `logic`; no conditions: always) and it is within its hours (`business_hours` when
//! `business_hours_only`, and `active_hours` when set). A rule whose conditions hold outside its
//! hours answers its fallback target (`fallback_used`) when `fallback_enabled`, and is skipped
//! otherwise. Comparisons: numeric when both sides are numbers (JSON numbers or plain decimal
//! strings such as `"5"` or `"-2.5"`; `"+420…"` stays text), else text, case-insensitively
//! (regular expressions are matched case-sensitively against the text as given; use `(?i)`).
//! A field missing from the context (or null) makes its condition false, whatever the operator.
//! Time fields missing from the context are derived from `now` in the rule's hours' zone (else
//! UTC): `hour`, `minute`, `day_of_week` (1 = Monday … 7), `weekday` (`mon` …), `time` (`HH:MM`)
//! and `date` (`YYYY-MM-DD`).

use std::borrow::Cow;

use chrono::{DateTime, Datelike, Timelike, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::settings::{compile_regex, Condition, Logic, Operator, RuleSettings, RuleTarget};
use crate::routing::{RuleVersion, Strategy, StrategyConfig};
use crate::schedule::DAY_KEYS;

/// What is known about a call when it is routed: field → JSON value (`caller_number`,
/// `called_number`, `language`, `priority`, `vip`, `campaign_id`, any custom attribute).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = Object))]
#[serde(transparent)]
pub struct RouteContext(pub Map<String, Value>);

impl RouteContext {
    /// An empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// The context with `field` set to `value`.
    pub fn with(mut self, field: &str, value: impl Into<Value>) -> Self {
        self.0.insert(field.to_owned(), value.into());
        self
    }

    /// A field's value.
    pub fn get(&self, field: &str) -> Option<&Value> {
        self.0.get(field)
    }
}

/// One rule version to evaluate.
#[derive(Debug, Clone, Copy)]
pub struct RuleRef<'a> {
    /// The rule.
    pub rule_id: Uuid,
    /// Its version.
    pub version: u32,
    /// Its settings at that version.
    pub settings: &'a RuleSettings,
}

/// The rule that routes the call, and where to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RuleMatch {
    /// The rule.
    pub rule_id: Uuid,
    /// The version used.
    pub version: u32,
    /// Its name.
    pub rule_name: String,
    /// How the target's agents are picked.
    pub strategy: Strategy,
    /// The strategy's settings.
    pub strategy_config: StrategyConfig,
    /// Where the call goes.
    pub target: RuleTarget,
    /// Where else, when the target cannot take the call (the fallback, when enabled and unused).
    pub fallback: Option<RuleTarget>,
    /// Whether `target` is the fallback (outside the rule's hours).
    pub fallback_used: bool,
    /// Why, for people.
    pub why: String,
}

impl RuleMatch {
    /// The rule version, for a routing decision.
    pub fn rule_version(&self) -> RuleVersion {
        RuleVersion { rule_id: self.rule_id, version: self.version }
    }
}

/// How one rule fared (`POST /rules/{id}/test`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RuleEvaluation {
    /// Each condition's result, in order.
    pub conditions: Vec<bool>,
    /// Whether the conditions hold together.
    pub conditions_met: bool,
    /// Whether the rule is enabled.
    pub enabled: bool,
    /// Whether `now` is within the rule's hours.
    pub in_hours: bool,
    /// The match, if the rule routes the call.
    pub result: Option<RuleMatch>,
    /// Why, for people.
    pub why: String,
}

fn time_field(field: &str, now: DateTime<Utc>, tz: Tz) -> Option<Value> {
    let local = now.with_timezone(&tz);
    Some(match field {
        "hour" => Value::from(local.hour()),
        "minute" => Value::from(local.minute()),
        "day_of_week" => Value::from(local.weekday().number_from_monday()),
        "weekday" => Value::from(DAY_KEYS[local.weekday().num_days_from_monday() as usize]),
        "time" => Value::from(local.format("%H:%M").to_string()),
        "date" => Value::from(local.format("%Y-%m-%d").to_string()),
        _ => return None,
    })
}

fn plain_decimal(s: &str) -> bool {
    let s = s.strip_prefix('-').unwrap_or(s);
    let (int, frac) = s.split_once('.').unwrap_or((s, "0"));
    !int.is_empty()
        && !frac.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) if plain_decimal(s.trim()) => s.trim().parse().ok(),
        _ => None,
    }
}

fn raw_text(v: &Value) -> Cow<'_, str> {
    match v {
        Value::String(s) => Cow::Borrowed(s.as_str()),
        other => Cow::Owned(other.to_string()),
    }
}

fn text(v: &Value) -> String {
    raw_text(v).to_lowercase()
}

fn equal(a: &Value, b: &Value) -> bool {
    match (number(a), number(b)) {
        (Some(x), Some(y)) => x == y,
        _ => text(a) == text(b),
    }
}

fn list_items(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(items) => items.clone(),
        Value::String(s) => s
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| Value::String(p.to_owned()))
            .collect(),
        other => vec![other.clone()],
    }
}

fn ordered(actual: &Value, expected: &Value) -> std::cmp::Ordering {
    match (number(actual), number(expected)) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        _ => text(actual).cmp(&text(expected)),
    }
}

/// Whether `actual` (the context's value) satisfies `operator` against `expected`.
pub fn compare(operator: Operator, actual: &Value, expected: &Value) -> bool {
    use std::cmp::Ordering::{Greater, Less};
    match operator {
        Operator::Equals => equal(actual, expected),
        Operator::NotEquals => !equal(actual, expected),
        Operator::Contains => match actual {
            Value::Array(items) => items.iter().any(|i| equal(i, expected)),
            _ => text(actual).contains(&text(expected)),
        },
        Operator::StartsWith => text(actual).starts_with(&text(expected)),
        Operator::EndsWith => text(actual).ends_with(&text(expected)),
        Operator::GreaterThan => ordered(actual, expected) == Greater,
        Operator::LessThan => ordered(actual, expected) == Less,
        Operator::InList => list_items(expected).iter().any(|i| equal(actual, i)),
        Operator::NotInList => !list_items(expected).iter().any(|i| equal(actual, i)),
        Operator::MatchesRegex => match expected.as_str().map(compile_regex) {
            Some(Ok(re)) => re.is_match(&raw_text(actual)),
            _ => false,
        },
    }
}

fn condition_holds(c: &Condition, ctx: &RouteContext, now: DateTime<Utc>, tz: Tz) -> bool {
    let derived;
    let actual = match ctx.get(&c.field) {
        Some(v) => v,
        None => match time_field(&c.field, now, tz) {
            Some(v) => {
                derived = v;
                &derived
            }
            None => return false,
        },
    };
    !actual.is_null() && compare(c.operator, actual, &c.value)
}

/// Evaluates one rule version against a context at `now`.
pub fn evaluate_rule(rule: &RuleRef<'_>, ctx: &RouteContext, now: DateTime<Utc>) -> RuleEvaluation {
    let s = rule.settings;
    let tz = s.business_hours.as_ref().or(s.active_hours.as_ref()).map_or(Tz::UTC, |h| h.zone());
    let conditions: Vec<bool> = s.conditions.iter().map(|c| condition_holds(c, ctx, now, tz)).collect();
    let conditions_met =
        conditions.iter().zip(&s.conditions).enumerate().fold(true, |acc, (i, (ok, c))| match (i, c.logic) {
            (0, _) => *ok,
            (_, Logic::And) => acc && *ok,
            (_, Logic::Or) => acc || *ok,
        });
    let in_business = !s.business_hours_only || s.business_hours.as_ref().is_some_and(|h| h.is_open(now));
    let in_active = s.active_hours.as_ref().is_none_or(|h| h.is_open(now));
    let in_hours = in_business && in_active;
    let matched =
        |target: RuleTarget, fallback: Option<RuleTarget>, fallback_used: bool, why: String| RuleMatch {
            rule_id: rule.rule_id,
            version: rule.version,
            rule_name: s.name.clone(),
            strategy: s.strategy,
            strategy_config: s.strategy_config.clone(),
            target,
            fallback,
            fallback_used,
            why,
        };
    let (result, why) = if !s.enabled {
        (None, "the rule is disabled".to_owned())
    } else if !conditions_met {
        (None, "the conditions do not hold".to_owned())
    } else if in_hours {
        let why = format!("rule '{}' v{} matched", s.name, rule.version);
        (Some(matched(s.target(), s.fallback(), false, why.clone())), why)
    } else {
        let closed = if in_business { "active hours" } else { "business hours" };
        match s.fallback() {
            Some(fb) => {
                let why =
                    format!("rule '{}' v{} matched outside its {closed}: fallback", s.name, rule.version);
                (Some(matched(fb, None, true, why.clone())), why)
            }
            None => (None, format!("outside the rule's {closed} and no fallback")),
        }
    };
    RuleEvaluation { conditions, conditions_met, enabled: s.enabled, in_hours, result, why }
}

/// The first rule (priority high to low, then rule id) that routes the call, if any.
pub fn evaluate_rules(rules: &[RuleRef<'_>], ctx: &RouteContext, now: DateTime<Utc>) -> Option<RuleMatch> {
    let mut order: Vec<&RuleRef<'_>> = rules.iter().collect();
    order.sort_by(|a, b| {
        b.settings.priority.cmp(&a.settings.priority).then_with(|| a.rule_id.cmp(&b.rule_id))
    });
    order.into_iter().find_map(|r| evaluate_rule(r, ctx, now).result)
}
