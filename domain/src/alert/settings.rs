//! An alert rule's settings: the seed's threshold (`name, description, metric_type, metric_name,
//! threshold_value, operator, severity, team_id, campaign_id, notification_channels,
//! notification_recipients, cooldown_minutes`) plus a scope by agent and queue, dimension
//! filters, the window the value is computed over, how long a breach must hold before it fires,
//! and a clear value (hysteresis).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::metric::settings::metric_name;
use crate::metric::MetricType;
use crate::routing::fields::{self, check_enum, merge_problems, parse_checked};
use crate::values::{clean_text, Email, InvalidValue};

/// How the value is compared with the threshold (the seed's operators).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Comparator {
    /// Breached above the threshold.
    #[default]
    Gt,
    /// Breached below the threshold.
    Lt,
    /// Breached at exactly the threshold.
    Eq,
    /// Breached at or above the threshold.
    Gte,
    /// Breached at or below the threshold.
    Lte,
}

impl Comparator {
    /// Every comparator.
    pub const ALL: [Comparator; 5] = [Self::Gt, Self::Lt, Self::Eq, Self::Gte, Self::Lte];

    /// The stable wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gt => "gt",
            Self::Lt => "lt",
            Self::Eq => "eq",
            Self::Gte => "gte",
            Self::Lte => "lte",
        }
    }

    /// Whether `value` breaches `threshold`.
    pub fn breaches(self, value: f64, threshold: f64) -> bool {
        match self {
            Self::Gt => value > threshold,
            Self::Lt => value < threshold,
            Self::Eq => value == threshold,
            Self::Gte => value >= threshold,
            Self::Lte => value <= threshold,
        }
    }

    /// Whether a firing alert has cleared: the value is back on the good side of `clear`
    /// (for `gt`: at or under it; for `gte`: under it; `lt`, `lte` mirrored; `eq`: any other
    /// value).
    pub fn clears(self, value: f64, clear: f64) -> bool {
        match self {
            Self::Gt => value <= clear,
            Self::Gte => value < clear,
            Self::Lt => value >= clear,
            Self::Lte => value > clear,
            Self::Eq => value != clear,
        }
    }
}

/// How serious an alert is (the seed's levels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// For information.
    Info,
    /// Look at it.
    #[default]
    Warning,
    /// Something is wrong.
    Error,
    /// Act now.
    Critical,
}

impl Severity {
    /// Every level, lowest first.
    pub const ALL: [Severity; 4] = [Self::Info, Self::Warning, Self::Error, Self::Critical];

    /// The stable wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Error => "error",
            Self::Critical => "critical",
        }
    }
}

/// Where notifications go. Recipients are matched by form: e-mail addresses to `email`,
/// `http(s)://` URLs to `webhook`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum NotificationChannel {
    /// E-mail over SMTP (when configured).
    Email,
    /// A signed HTTP POST.
    Webhook,
}

impl NotificationChannel {
    /// Every channel.
    pub const ALL: [NotificationChannel; 2] = [Self::Email, Self::Webhook];

    /// The stable wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Webhook => "webhook",
        }
    }
}

/// One recipient, by channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "channel", content = "to", rename_all = "snake_case")]
pub enum Recipient {
    /// An e-mail address (lower-cased).
    Email(String),
    /// A webhook URL.
    Webhook(String),
}

/// Checks a webhook URL: `http://` or `https://`, a host, no spaces or credentials, at most
/// 2000 characters. Returns it trimmed.
pub fn webhook_url(field: &str, raw: &str) -> Result<String, InvalidValue> {
    let url = raw.trim();
    let invalid = || {
        InvalidValue::new(field.to_owned(), "invalid_url", "an http(s) URL such as https://example.com/hook")
    };
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://")).ok_or_else(invalid)?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit_once(':').map_or(authority, |(h, port)| {
        if port.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            authority
        }
    });
    let ok = url.len() <= 2000
        && !host.is_empty()
        && !authority.contains('@')
        && !url.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(url.to_owned())
    } else {
        Err(invalid())
    }
}

/// An alert rule's settings. Unknown keys are refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct AlertRuleSettings {
    /// 1–200 characters.
    pub name: String,
    /// Up to 2000 characters.
    pub description: Option<String>,
    /// The metric's type (the seed's).
    pub metric_type: MetricType,
    /// A metric name (built-in or custom) or a KPI name (`service_level`, `asa`, …); it need
    /// not have been seen yet.
    pub metric_name: String,
    /// The threshold (finite).
    pub threshold_value: f64,
    /// How the value is compared with the threshold.
    pub operator: Comparator,
    /// Hysteresis: a firing alert resolves only once the value is back past this (default: the
    /// threshold). At or under the threshold for `gt`/`gte`, at or over it for `lt`/`lte`;
    /// none for `eq`.
    pub clear_value: Option<f64>,
    /// How serious.
    pub severity: Severity,
    /// Only this team's values.
    pub team_id: Option<Uuid>,
    /// Only this agent's values.
    pub agent_id: Option<Uuid>,
    /// Only this campaign's values.
    pub campaign_id: Option<Uuid>,
    /// Only this queue's values.
    pub queue_id: Option<Uuid>,
    /// Only values with these dimensions (name → text, number or boolean), at most 20.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub dimension_filters: Map<String, Value>,
    /// The window the value is computed over (60 s – 31 days, default 300 s).
    pub window_seconds: u32,
    /// How long a breach must hold before the alert fires (0 – 1 day, default 0).
    pub for_seconds: u32,
    /// The least time between two firings (0 – 7 days, default 60 minutes, the seed's).
    pub cooldown_minutes: u32,
    /// Channels to notify (distinct).
    pub notification_channels: Vec<NotificationChannel>,
    /// Addresses and URLs for those channels, at most 20.
    pub notification_recipients: Vec<String>,
}

impl Default for AlertRuleSettings {
    fn default() -> Self {
        Self {
            name: String::new(),
            description: None,
            metric_type: MetricType::default(),
            metric_name: String::new(),
            threshold_value: 0.0,
            operator: Comparator::default(),
            clear_value: None,
            severity: Severity::default(),
            team_id: None,
            agent_id: None,
            campaign_id: None,
            queue_id: None,
            dimension_filters: Map::new(),
            window_seconds: 300,
            for_seconds: 0,
            cooldown_minutes: 60,
            notification_channels: Vec::new(),
            notification_recipients: Vec::new(),
        }
    }
}

impl AlertRuleSettings {
    /// Reads settings from JSON and checks every rule, reporting all problems at once.
    pub fn from_json(value: Value) -> Result<Self, Vec<InvalidValue>> {
        let mut pre = Vec::new();
        let types: Vec<&str> = MetricType::ALL.iter().map(|t| t.as_str()).collect();
        let operators: Vec<&str> = Comparator::ALL.iter().map(|c| c.as_str()).collect();
        let severities: Vec<&str> = Severity::ALL.iter().map(|s| s.as_str()).collect();
        let channels: Vec<&str> = NotificationChannel::ALL.iter().map(|c| c.as_str()).collect();
        check_enum("metric_type", value.get("metric_type"), &types, false, &mut pre);
        check_enum("operator", value.get("operator"), &operators, false, &mut pre);
        check_enum("severity", value.get("severity"), &severities, false, &mut pre);
        if let Some(list) = value.get("notification_channels").and_then(Value::as_array) {
            for (i, c) in list.iter().enumerate() {
                check_enum(&format!("notification_channels[{i}]"), Some(c), &channels, false, &mut pre);
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

    /// The value below (`gt`, `gte`) or above (`lt`, `lte`) which a firing alert resolves.
    pub fn clear_threshold(&self) -> f64 {
        self.clear_value.unwrap_or(self.threshold_value)
    }

    /// The recipients by channel (valid settings only carry recognizable ones).
    pub fn recipients(&self) -> Vec<Recipient> {
        self.notification_recipients
            .iter()
            .map(
                |r| {
                    if r.contains("://") {
                        Recipient::Webhook(r.clone())
                    } else {
                        Recipient::Email(r.clone())
                    }
                },
            )
            .collect()
    }

    /// Checks every rule and normalizes.
    pub fn validated(mut self) -> Result<Self, Vec<InvalidValue>> {
        let mut problems = Vec::new();
        match clean_text("name", &self.name, 200) {
            Ok(name) => self.name = name,
            Err(e) => problems.push(e),
        }
        fields::optional_text("description", &mut self.description, 2000, &mut problems);
        match metric_name("metric_name", &self.metric_name) {
            Ok(name) => self.metric_name = name,
            Err(e) => problems.push(e),
        }
        if !self.threshold_value.is_finite() {
            problems.push(InvalidValue::new("threshold_value", "not_finite", "must be a finite number"));
        }
        if let Some(clear) = self.clear_value {
            let t = self.threshold_value;
            let problem = match self.operator {
                _ if !clear.is_finite() => Some(("not_finite", "must be a finite number")),
                Comparator::Eq => Some(("not_allowed", "eq has no hysteresis")),
                Comparator::Gt | Comparator::Gte if clear > t => {
                    Some(("out_of_range", "at or under threshold_value for gt and gte"))
                }
                Comparator::Lt | Comparator::Lte if clear < t => {
                    Some(("out_of_range", "at or over threshold_value for lt and lte"))
                }
                _ => None,
            };
            if let Some((code, message)) = problem {
                problems.push(InvalidValue::new("clear_value", code, message));
            }
        }
        for (field, id) in [
            ("team_id", self.team_id),
            ("agent_id", self.agent_id),
            ("campaign_id", self.campaign_id),
            ("queue_id", self.queue_id),
        ] {
            if id.is_some_and(|u| u.is_nil()) {
                problems.push(InvalidValue::new(field, "invalid_id", "not the nil uuid"));
            }
        }
        if self.dimension_filters.len() > 20 {
            problems.push(InvalidValue::new("dimension_filters", "too_many", "at most 20 filters"));
        }
        for (key, value) in &self.dimension_filters {
            if !matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_)) {
                problems.push(InvalidValue::new(
                    format!("dimension_filters.{key}"),
                    "invalid_value",
                    "a string, number or boolean",
                ));
            }
        }
        if !(60..=31 * 86_400).contains(&self.window_seconds) {
            problems.push(InvalidValue::new("window_seconds", "out_of_range", "from 60 to 2678400"));
        }
        if self.for_seconds > 86_400 {
            problems.push(InvalidValue::new("for_seconds", "out_of_range", "from 0 to 86400"));
        }
        if self.cooldown_minutes > 7 * 24 * 60 {
            problems.push(InvalidValue::new("cooldown_minutes", "out_of_range", "from 0 to 10080"));
        }
        self.check_notifications(&mut problems);
        if problems.is_empty() {
            Ok(self)
        } else {
            Err(merge_problems(Vec::new(), problems))
        }
    }

    fn check_notifications(&mut self, problems: &mut Vec<InvalidValue>) {
        let mut channels: Vec<NotificationChannel> = Vec::new();
        for (i, c) in self.notification_channels.iter().enumerate() {
            if channels.contains(c) {
                problems.push(InvalidValue::new(
                    format!("notification_channels[{i}]"),
                    "duplicate",
                    "listed twice",
                ));
            } else {
                channels.push(*c);
            }
        }
        self.notification_channels = channels.clone();
        if self.notification_recipients.len() > 20 {
            problems.push(InvalidValue::new("notification_recipients", "too_many", "at most 20 recipients"));
        }
        let mut used = Vec::new();
        for (i, raw) in self.notification_recipients.iter_mut().enumerate() {
            let field = format!("notification_recipients[{i}]");
            let (channel, checked) = if raw.contains("://") {
                (NotificationChannel::Webhook, webhook_url(&field, raw))
            } else {
                let parsed = Email::parse(raw).map(|e| e.as_str().to_owned());
                (
                    NotificationChannel::Email,
                    parsed.map_err(|e| InvalidValue::new(field.clone(), e.code, e.message)),
                )
            };
            match checked {
                Ok(value) if !channels.contains(&channel) => problems.push(InvalidValue::new(
                    field,
                    "channel_not_listed",
                    format!("{} needs the {} channel", value, channel.as_str()),
                )),
                Ok(value) => {
                    *raw = value;
                    used.push(channel);
                }
                Err(e) => problems.push(e),
            }
        }
        for c in channels {
            if !used.contains(&c) && !problems.iter().any(|p| p.field.starts_with("notification_recipients"))
            {
                problems.push(InvalidValue::new(
                    "notification_recipients",
                    "required",
                    format!("the {} channel needs a recipient", c.as_str()),
                ));
            }
        }
    }
}
